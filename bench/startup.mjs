#!/usr/bin/env node
/**
 * Start-up cost of the short-lived commands against bare `node -e 0` measured in the same run,
 * interleaved (one of each per round), medians of RUNS rounds. Targets (issue 14):
 *   l2alert buffer-status, l2alert config: at most 1.3 x node -e 0
 *   l2backup status, l2health status:     at most 2.0 x node -e 0
 * The status commands read the crontab as in the image: a `crontab` on PATH prints the image's
 * schedule, so cron-parser's cost is counted. Besides wall time, each child's CPU time
 * (user + system, 10 ms ticks) is printed: on a loaded machine it is the steadier of the two.
 */
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT, median, report } from './lib.mjs';

const runs = Number(process.env.RUNS ?? 21);
const dir = mkdtempSync(join(tmpdir(), 'l2bench-'));
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
const fakeBin = join(dir, 'bin');
mkdirSync(fakeBin);
writeFileSync(join(fakeBin, 'crontab'), '#!/bin/sh\necho "0 3 * * * /app/backup.sh nightly"\necho "*/5 * * * * /app/health-monitor.sh once"\n');
chmodSync(join(fakeBin, 'crontab'), 0o755);
const env = { PATH: `${fakeBin}:${process.env.PATH}`, BACKUP_ROOT: join(dir, 'root'), L2_ENV_FILE: '/dev/null', NO_COLOR: '1' };
mkdirSync(env.BACKUP_ROOT);

const bin = (name) => join(ROOT, 'bin', `${name}.js`);
const commands = {
  'node -e 0': ['-e', '0'],
  'l2alert buffer-status': [bin('l2alert'), 'buffer-status'],
  'l2alert config': [bin('l2alert'), 'config'],
  'l2backup status': [bin('l2backup'), 'status'],
  'l2health status': [bin('l2health'), 'status'],
};
const targets = { 'l2alert buffer-status': 1.3, 'l2alert config': 1.3, 'l2backup status': 2.0, 'l2health status': 2.0 };

/** This process's reaped children's CPU time in ms (cutime + cstime of /proc/self/stat, USER_HZ 100). */
function childrenCpu() {
  const s = readFileSync('/proc/self/stat', 'utf8');
  const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
  return (Number(f[13]) + Number(f[14])) * 10;
}

/** Wall ms and the child's CPU ms. */
function sample(args) {
  const before = childrenCpu();
  const t = process.hrtime.bigint();
  const r = spawnSync('node', args, { stdio: 'ignore', env });
  const wall = Number(process.hrtime.bigint() - t) / 1e6;
  if (r.status !== 0) throw new Error(`node ${args.join(' ')} exited ${r.status}`);
  return { wall, cpu: childrenCpu() - before };
}

for (let i = 0; i < 3; i++) for (const args of Object.values(commands)) sample(args);
const wall = Object.fromEntries(Object.keys(commands).map((k) => [k, []]));
const cpu = Object.fromEntries(Object.keys(commands).map((k) => [k, []]));
for (let i = 0; i < runs; i++) {
  for (const [name, args] of Object.entries(commands)) {
    const s = sample(args);
    wall[name].push(s.wall);
    cpu[name].push(s.cpu);
  }
}
const base = median(wall['node -e 0']);
const baseCpu = cpu['node -e 0'].reduce((a, b) => a + b, 0) / runs;
console.log(`node -e 0: ${base.toFixed(1)} ms wall (median of ${runs}), ${baseCpu.toFixed(1)} ms CPU (mean)`);
let ok = true;
for (const [name, target] of Object.entries(targets)) {
  ok = report(`${name} / node -e 0 (wall)`, median(wall[name]), base, target) && ok;
  const c = cpu[name].reduce((a, b) => a + b, 0) / runs;
  console.log(`  CPU: ${(c / baseCpu).toFixed(2)} (ours ${c.toFixed(1)} ms, node -e 0 ${baseCpu.toFixed(1)} ms)`);
}
process.exitCode = ok ? 0 : 1;
