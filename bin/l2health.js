#!/usr/bin/env node
// CommonJS (bin/package.json), loading one CommonJS file: Node's ESM loader is the largest
// share of a short command's start-up on Node 20 (scripts/bundle.mjs, README "Benchmarks").
'use strict';
require('../dist/bundle/l2health.cjs').main(process.argv);
