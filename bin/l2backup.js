#!/usr/bin/env node
// CommonJS (bin/package.json), loading one CommonJS file: Node's ESM loader is the largest
// share of a short command's start-up on Node 20 (scripts/bundle.mjs, README "Benchmarks").
// Node 22+ keeps compiled code between runs (cron starts these every few minutes); Node 20 has
// no such API, and where the cache folder cannot be written Node goes on without it.
'use strict';
require('node:module').enableCompileCache?.();
require('../dist/bundle/l2backup.cjs').main(process.argv);
