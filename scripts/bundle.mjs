#!/usr/bin/env node
/**
 * Bundles the three programs (from tsc's dist/) into dist/bundle/ with esbuild: one file per
 * program plus shared chunks, npm packages left external. A program started every five
 * minutes by cron pays Node's module loading on every start; one bundle instead of ~40 small
 * modules brings `l2alert config` from ~1.5x to ~1.25x bare Node start-up (bench/startup.mjs).
 * Code loaded with import() inside commands stays in separate chunks, loaded only when used.
 */
import { build } from 'esbuild';

await build({
  entryPoints: { l2alert: 'dist/cli/l2alert.js', l2backup: 'dist/cli/l2backup.js', l2health: 'dist/cli/l2health.js' },
  outdir: 'dist/bundle',
  bundle: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  packages: 'external',
  sourcemap: 'linked',
  logLevel: 'warning',
});
