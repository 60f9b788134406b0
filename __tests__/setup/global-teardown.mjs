/** Removes the run's scratch folder (unmounting anything mounted under it first) and its users. */
import { readFileSync, rmSync, existsSync } from 'node:fs';
import { execFileSync } from 'node:child_process';

export function mountsUnder(dir) {
  const points = readFileSync('/proc/self/mounts', 'utf8')
    .split('\n')
    .map((l) => l.split(' ')[1] ?? '')
    // Mount points are octal-escaped in /proc/mounts (a space is \040).
    .map((p) => p.replace(/\\([0-7]{3})/g, (_, o) => String.fromCharCode(parseInt(o, 8))));
  return points.filter((p) => p === dir || p.startsWith(`${dir}/`)).sort((a, b) => b.length - a.length);
}

export function removeRun(runDir) {
  if (!existsSync(runDir)) return;
  for (const m of mountsUnder(runDir)) execFileSync('umount', ['-l', m], { stdio: 'ignore' });
  let users = [];
  try {
    users = readFileSync(`${runDir}/.users`, 'utf8').split('\n').filter(Boolean);
  } catch {}
  for (const u of new Set(users)) {
    try {
      execFileSync('crontab', ['-u', u, '-r'], { stdio: 'ignore' });
    } catch {}
    try {
      execFileSync('userdel', ['--force', '--remove', u], { stdio: 'ignore' });
    } catch {}
  }
  rmSync(runDir, { recursive: true, force: true });
}

export default function globalTeardown() {
  const runDir = process.env.L2_TEST_RUN_DIR;
  if (runDir && !process.env.L2_TEST_KEEP) removeRun(runDir);
}
