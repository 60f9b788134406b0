#!/usr/bin/env node
/**
 * Bundles the three programs (from tsc's dist/) into dist/bundle/ with esbuild, in two parts.
 *
 * dist/bundle/<tool>.cjs, one file each: the program's entry (src/cli/<tool>-main.ts) with what
 * its light commands need (status, config, buffer-status: src/cli/light.ts, the config, the
 * output). Cron and people start these often. The sources are ESM; this one built file is
 * CommonJS, which bin/<tool>.js (CommonJS too, bin/package.json) loads: on Node 20 an ESM
 * entry starts Node's ESM loader (its resolver, module jobs, node:fs/promises with readline
 * behind it) and compiles the module graph eagerly, about 25 M instructions (~15 % of the
 * start-up) more than the same bundle as CommonJS (README "Benchmarks").
 *
 * dist/bundle/<tool>.cjs.cache: V8's code cache of that file, made last (scripts/code-cache.cjs),
 * from which bin/light-loader.js compiles it; the bins import the commander program themselves.
 *
 * dist/bundle/full/: the commander programs (src/cli/<tool>.ts), ESM, which the bin loads with
 * import() for any other command line; one file per program plus shared chunks. Code splitting: what a command
 * loads with import() (the alert sender, the backup engine, node:crypto behind them...) sits in
 * its own chunk, so a command neither parses nor links what it does not run. A split chunk of a
 * CommonJS package exports only `default`; src/schedule reads cron-parser either way.
 *
 * `--standalone` (the image's build stage) bundles the npm packages too, minified: the runtime
 * image then needs no node_modules at all (2.3 MB instead of ~190 MB). Packages loaded with
 * import() inside commands (the AWS SDK, got, archiver...) are still evaluated only when used.
 */
import { build } from 'esbuild';
import { spawnSync } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';

const standalone = process.argv.includes('--standalone');
const outdir = 'dist/bundle';
rmSync(outdir, { recursive: true, force: true });
const PROGRAMS = ['l2alert', 'l2backup', 'l2health'];

const common = {
  bundle: true,
  platform: 'node',
  target: 'node20',
  logLevel: 'warning',
  ...(standalone
    ? {
        minify: true,
        // Error and class names stay readable (the AWS SDK and our own code test err.name).
        keepNames: true,
        legalComments: 'none',
        // The packages' ESM builds: the AWS SDK's CommonJS build, bundled and loaded with
        // import(), loses its named exports.
        mainFields: ['module', 'main'],
      }
    : {
        // npm packages stay external (loaded from node_modules when used), except commander:
        // every command needs it, and inlined it loads faster than through its CommonJS entry.
        external: ['@aws-sdk/*', '@smithy/*', 'archiver', 'chalk', 'cron-parser', 'eventsource-parser', 'execa', 'fast-glob', 'got', 'ora'],
        sourcemap: 'linked',
      }),
};

await build({
  ...common,
  format: 'cjs',
  outExtension: { '.js': '.cjs' },
  charset: 'ascii',
  entryPoints: Object.fromEntries(PROGRAMS.map((p) => [p, `dist/cli/${p}-main.js`])),
  outdir,
  // No import() in the light bundles: Node 20 cannot import() from code compiled from a V8 code
  // cache (bin/light-loader.js). An npm package they load lazily (chalk on a terminal) is
  // require()d (Node >= 20.19 requires ES modules); the commander program is imported by the bin.
  supported: { 'dynamic-import': false },
});
// bin/light-loader.js decodes the light bundles as latin1 (a copy, where utf8 is decoded):
// esbuild escapes every other character (charset: 'ascii', its default), and this checks it.
for (const p of PROGRAMS) {
  if (readFileSync(`${outdir}/${p}.cjs`).some((byte) => byte > 0x7f)) throw new Error(`${outdir}/${p}.cjs is not ASCII; bin/light-loader.js reads it as latin1`);
}
await build({
  ...common,
  format: 'esm',
  // commander is CommonJS and requires node builtins: give the ESM bundle a require().
  banner: { js: "import { createRequire as __l2CreateRequire } from 'node:module'; const require = __l2CreateRequire(import.meta.url);" },
  // restore-worker: local restore's copy threads load it from the top of full/, above the chunk
  // that starts them (src/backup/restore-threads.ts).
  entryPoints: { ...Object.fromEntries(PROGRAMS.map((p) => [p, `dist/cli/${p}.js`])), 'restore-worker': 'dist/backup/restore-worker.js' },
  outdir: `${outdir}/full`,
  splitting: true,
  chunkNames: 'chunks/[name]-[hash]',
});

// The light bundles' V8 code caches (scripts/code-cache.cjs), made by this Node.js: the image's
// build stage makes its own.
for (const p of PROGRAMS) {
  const r = spawnSync(process.execPath, ['scripts/code-cache.cjs', p], { stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8', env: { PATH: process.env.PATH ?? '' } });
  if (r.status !== 0) throw new Error(`making ${outdir}/${p}.cjs.cache failed (exit ${r.status ?? r.signal}):\n${r.stderr}`);
}
