/**
 * One scratch folder per test run, /tmp/l2run-XXXXXX: every temp folder the tests make goes
 * under it (each test file gets its own subfolder, see per-file.ts), so the teardown can remove
 * all of it. The system user the root-only tests need is named per run and removed at the end.
 * A run that was killed before its teardown is cleaned up by the next run's setup.
 */
import { mkdtempSync, chmodSync, writeFileSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { removeRun } from './global-teardown.mjs';

function alive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return err.code === 'EPERM';
  }
}

export default function globalSetup() {
  const base = process.env.L2_TEST_TMP_PARENT || '/tmp';
  for (const name of readdirSync(base).filter((n) => n.startsWith('l2run-'))) {
    let pid;
    try {
      pid = Number(readFileSync(join(base, name, '.pid'), 'utf8'));
    } catch {
      continue;
    }
    if (pid && !alive(pid)) removeRun(join(base, name));
  }
  const runDir = mkdtempSync(join(base, 'l2run-'));
  // The non-root test user must reach the folders made for it below.
  chmodSync(runDir, 0o755);
  writeFileSync(join(runDir, '.users'), '');
  writeFileSync(join(runDir, '.pid'), String(process.pid));
  process.env.L2_TEST_RUN_DIR = runDir;
  process.env.L2_TEST_USER = `l2t-${randomBytes(4).toString('hex')}`;
  process.env.TMPDIR = runDir;
}
