#!/usr/bin/env node
// Makes dist/bundle/<tool>.cjs.cache, the V8 code cache bin/light-loader.js compiles the light
// bundle from (scripts/bundle.mjs runs this once per program, after bundling). The cache is taken
// after the program's light commands have run once each, in this process, on an empty scratch
// volume: V8 then keeps the functions they compiled, not only the bundle's top level (about
// half the saving). Written to a temporary name and renamed: a reader sees no cache or a whole one.
'use strict';
const { mkdtempSync, renameSync, rmSync, writeFileSync, readFileSync } = require('node:fs');
const { tmpdir } = require('node:os');
const { join } = require('node:path');
const { bundleFile, encodeCache, loadLight } = require('../bin/light-loader.js');

/** Each program's light commands (src/cli/<tool>-main.ts), as run by cron and people. */
const TRAINING = {
  l2alert: [['buffer-status'], ['buffer-status', '--json'], ['config'], ['config', '--json']],
  l2backup: [['status'], ['status', '--json'], ['config'], ['config', '--json']],
  l2health: [['status'], ['status', '--json'], ['config'], ['config', '--json']],
};

async function main(tool) {
  const scratch = mkdtempSync(join(tmpdir(), 'l2-code-cache-'));
  try {
    // Only what the commands need: no env file, no colour, a scratch volume.
    for (const k of Object.keys(process.env)) if (k !== 'PATH' && k !== 'HOME' && k !== 'TZ') delete process.env[k];
    Object.assign(process.env, { BACKUP_ROOT: scratch, L2_ENV_FILE: '/dev/null', NO_COLOR: '1' });
    const file = bundleFile(tool);
    const { exports, script } = loadLight(tool);
    if (script.cachedDataRejected !== undefined) throw new Error(`${file}.cache exists already; the build removes dist/bundle first`);
    for (const args of TRAINING[tool]) {
      if (!(await exports.main(['node', tool, ...args]))) throw new Error(`${tool} ${args.join(' ')} is not a light command`);
    }
    const tmp = `${file}.cache.tmp-${process.pid}`;
    writeFileSync(tmp, encodeCache(readFileSync(file), script.createCachedData()));
    renameSync(tmp, `${file}.cache`);
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}

main(process.argv[2]).then(
  () => process.exit(0),
  (err) => {
    process.stderr.write(`code cache for ${process.argv[2]}: ${err.stack ?? err}\n`);
    process.exit(1);
  },
);
