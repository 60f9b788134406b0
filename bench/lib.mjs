/** Shared bits of the benchmarks: timing child processes, medians, ratios. */
import { spawnSync } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');

export function time(cmd, args, opts = {}) {
  const t = process.hrtime.bigint();
  const r = spawnSync(cmd, args, { stdio: opts.stdio ?? 'ignore', env: opts.env ?? process.env, cwd: opts.cwd, input: opts.input });
  const ms = Number(process.hrtime.bigint() - t) / 1e6;
  if (r.status !== 0 && !opts.allowFail) throw new Error(`${cmd} ${args.join(' ')} exited ${r.status}: ${r.stderr ?? ''}`);
  return ms;
}

export function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

export function report(name, ours, peer, target, better = 'lower') {
  const ratio = ours / peer;
  const ok = better === 'lower' ? ratio <= target : ratio >= target;
  console.log(`${name}: ${ratio.toFixed(2)} (ours ${ours.toFixed(1)}, peer ${peer.toFixed(1)}; target ${better === 'lower' ? '<=' : '>='} ${target}) ${ok ? 'OK' : 'MISSED'}`);
  return ok;
}

/** Runs a command under /usr/bin/time: wall time (ms) and peak resident memory (MiB). */
export function measure(cmd, args, opts = {}) {
  const out = join(tmpdir(), `l2bench-time-${process.pid}-${Math.random().toString(36).slice(2)}`);
  const ms = time('/usr/bin/time', ['-o', out, '-f', '%M', cmd, ...args], opts);
  const kb = Number(readFileSync(out, 'utf8').trim().split('\n').pop());
  rmSync(out, { force: true });
  return { ms, mib: kb / 1024 };
}

/** The machine's load while a benchmark ran (the ratios are what to read on a shared machine). */
export function load() {
  return readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
}

/** Runs a command under /usr/bin/time: wall time and CPU time (user + system, children included), both in ms. */
export function timeCpu(cmd, args, opts = {}) {
  const out = join(tmpdir(), `l2bench-cpu-${process.pid}-${Math.random().toString(36).slice(2)}`);
  const ms = time('/usr/bin/time', ['-o', out, '-f', '%U %S', cmd, ...args], opts);
  const [user, sys] = readFileSync(out, 'utf8').trim().split('\n').pop().split(' ').map(Number);
  rmSync(out, { force: true });
  return { ms, cpuMs: (user + sys) * 1000 };
}
