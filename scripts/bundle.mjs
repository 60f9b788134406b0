#!/usr/bin/env node
/**
 * Bundles the three programs (from tsc's dist/) into dist/bundle/ with esbuild: one file per
 * program plus shared chunks, npm packages left external. A program started every five
 * minutes by cron pays Node's module loading on every start; one bundle instead of ~40 small
 * modules brings `l2alert config` from ~1.5x to ~1.25x bare Node start-up (bench/startup.mjs).
 *
 * `--standalone` (the image's build stage) bundles the npm packages too, minified: the runtime
 * image then needs no node_modules at all (2.3 MB instead of ~190 MB). Packages loaded with
 * import() inside commands (the AWS SDK, got, archiver...) are still evaluated only when used.
 * Code splitting: what a command loads with import() (the alert sender, the backup engine,
 * node:crypto behind them...) sits in its own chunk, so a light command such as
 * `l2alert buffer-status` neither parses nor links it (bench/startup.mjs). A split chunk of a
 * CommonJS package exports only `default`; src/schedule reads cron-parser either way.
 */
import { build } from 'esbuild';
import { rmSync } from 'node:fs';

const standalone = process.argv.includes('--standalone');
const outdir = 'dist/bundle';
rmSync(outdir, { recursive: true, force: true });

await build({
  // restore-worker: local restore's copy threads load it from beside the bundle (src/backup/restore-threads.ts).
  entryPoints: { l2alert: 'dist/cli/l2alert.js', l2backup: 'dist/cli/l2backup.js', l2health: 'dist/cli/l2health.js', 'restore-worker': 'dist/backup/restore-worker.js' },
  outdir,
  bundle: true,
  splitting: true,
  chunkNames: 'chunks/[name]-[hash]',
  format: 'esm',
  platform: 'node',
  target: 'node20',
  // commander is CommonJS and requires node builtins: give the ESM bundle a require().
  banner: { js: "import { createRequire as __l2CreateRequire } from 'node:module'; const require = __l2CreateRequire(import.meta.url);" },
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
        external: ['@aws-sdk/*', 'archiver', 'chalk', 'cron-parser', 'eventsource-parser', 'execa', 'fast-glob', 'got', 'ora'],
        sourcemap: 'linked',
      }),
});
