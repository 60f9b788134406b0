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
  // npm packages stay external (loaded from node_modules when used), except commander: every
  // command needs it, and inlined it loads faster than through its CommonJS entry.
  external: ['@aws-sdk/*', 'archiver', 'chalk', 'cron-parser', 'eventsource-parser', 'execa', 'fast-glob', 'got', 'ora'],
  sourcemap: 'linked',
  // commander is CommonJS and requires node builtins: give the ESM bundle a require().
  banner: { js: "import { createRequire as __l2CreateRequire } from 'node:module'; const require = __l2CreateRequire(import.meta.url);" },
  logLevel: 'warning',
});
