#!/usr/bin/env node
/**
 * Start-up cost of the light commands: `l2alert buffer-status` and `l2alert config` against
 * bare `node -e 0`, medians over repeated runs. Target: at most 1.5 x bare Node start-up.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT, time, median, report } from './lib.mjs';

const runs = Number(process.env.RUNS ?? 21);
const dir = mkdtempSync(join(tmpdir(), 'l2bench-'));
const env = { PATH: process.env.PATH, BACKUP_ROOT: dir, L2_ENV_FILE: '/dev/null', NO_COLOR: '1' };
const bin = join(ROOT, 'bin/l2alert.js');
const samples = { node: [], status: [], config: [] };
for (let i = 0; i < 3; i++) time('node', [bin, 'config'], { env });
for (let i = 0; i < runs; i++) {
  samples.node.push(time('node', ['-e', '0'], { env }));
  samples.status.push(time('node', [bin, 'buffer-status'], { env }));
  samples.config.push(time('node', [bin, 'config'], { env }));
}
const base = median(samples.node);
console.log(`node -e 0: ${base.toFixed(1)} ms (median of ${runs})`);
const a = report('l2alert buffer-status / node -e 0', median(samples.status), base, 1.5);
const b = report('l2alert config / node -e 0', median(samples.config), base, 1.5);
process.exitCode = a && b ? 0 : 1;
