#!/usr/bin/env node
// CommonJS (bin/package.json), loading one CommonJS file from its V8 code cache
// (./light-loader.js): Node's ESM loader and parsing the bundle are the largest shares of a short
// command's start-up on Node 20 (scripts/bundle.mjs, README "Benchmarks"). Any command line that
// is not a light command goes to the commander program, an ES module.
'use strict';
// By absolute path: a relative one costs the resolver ~0.4 M instructions more (bench/startup.mjs).
require(`${__dirname}/light-loader.js`).runProgram('l2alert', process.argv);
