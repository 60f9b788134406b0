#!/usr/bin/env node
// Node 22+ keeps compiled code between runs (cron starts these every few minutes); Node 20 has no such API.
import module from 'node:module';

module.enableCompileCache?.();
const { main } = await import('../dist/bundle/l2alert.js');
await main(process.argv);
