/** Removes the run's scratch folder (unmounting anything mounted under it first) and its users. */
import { readFileSync, rmSync, existsSync } from 'node:fs';
import { execFileSync } from 'node:child_process';

export function mountsUnder(dir) {
  const lines = readFileSync('/proc/self/mounts', 'utf8').split('\n');
  const points = lines.map((l) => l.split(' ')[1]).filter((p) => p && (p === dir || p.startsWith(`${dir}/`)));
  // Mount points are octal-escaped in /proc/mounts; decode spaces and the like.
  return points.map((p) => p.replace(/\\([0-7]{3})/g, (_, o) => String.fromCharCode(parseInt(o, 8)))).sort((a, b) => b.length - a.length);
}

export default function globalTeardown() {
  const runDir = process.env.L2_TEST_RUN_DIR;
  if (!runDir || !existsSync(runDir)) return;
  for (const m of mountsUnder(runDir)) execFileSync('umount', ['-l', m], { stdio: 'ignore' });
  const users = readFileSync(`${runDir}/.users`, 'utf8').split('\n').filter(Boolean);
  for (const u of new Set(users)) {
    try {
      execFileSync('crontab', ['-u', u, '-r'], { stdio: 'ignore' });
    } catch {}
    try {
      execFileSync('userdel', ['--force', '--remove', u], { stdio: 'ignore' });
    } catch {}
  }
  if (!process.env.L2_TEST_KEEP) rmSync(runDir, { recursive: true, force: true });
}
