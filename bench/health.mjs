#!/usr/bin/env node
/**
 * 50 HTTP targets on 127.0.0.1 that each answer after 200 ms. Prints `l2health health-only`
 * wall time against (200 ms + `node -e 0`), target <= 1.5, and against a sequential curl loop
 * like the old health-monitor.sh. Medians over repeated runs.
 */
import http from 'node:http';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { ROOT, median, report } from './lib.mjs';

const N = 50;
const DELAY = 200;
const runs = Number(process.env.RUNS ?? 5);
const servers = [];
for (let i = 0; i < N; i++) {
  const s = http.createServer((_req, res) => setTimeout(() => res.end('ok'), DELAY));
  await new Promise((r) => s.listen(0, '127.0.0.1', r));
  servers.push(s);
}
const urls = servers.map((s, i) => `t${i}=http://127.0.0.1:${s.address().port}/health`);
const dir = mkdtempSync(join(tmpdir(), 'l2bench-health-'));
const env = { PATH: process.env.PATH, BACKUP_ROOT: dir, L2_ENV_FILE: '/dev/null', NO_COLOR: '1', HEALTH_ENDPOINTS: urls.join(','), HEALTH_LATENCY_WARN_MS: '5000' };

// The servers live in this process, so children are timed asynchronously.
function timeAsync(cmd, args) {
  return new Promise((resolve, reject) => {
    const t = process.hrtime.bigint();
    const p = spawn(cmd, args, { stdio: 'ignore', env });
    p.on('exit', (code) => (code === 0 ? resolve(Number(process.hrtime.bigint() - t) / 1e6) : reject(new Error(`${cmd} exited ${code}`))));
  });
}

const ours = [];
const bare = [];
const curl = [];
const script = urls.map((u) => `curl -fsS -o /dev/null --max-time 5 ${u.split('=')[1]}`).join('\n');
for (let i = 0; i < runs; i++) {
  bare.push(await timeAsync('node', ['-e', '0']));
  ours.push(await timeAsync('node', [join(ROOT, 'bin/l2health.js'), 'health-only']));
  if (i < 2) curl.push(await timeAsync('sh', ['-c', script]));
}
const floor = DELAY + median(bare);
console.log(`${N} targets answering after ${DELAY} ms; node -e 0 ${median(bare).toFixed(1)} ms`);
const ok = report('l2health health-only / (200 ms + node -e 0)', median(ours), floor, 1.5);
report('l2health health-only / sequential curl loop', median(ours), median(curl), 1, 'lower');
for (const s of servers) s.close();
process.exitCode = ok ? 0 : 1;
