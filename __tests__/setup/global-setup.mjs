/**
 * One scratch folder per test run, /tmp/l2run-XXXXXX: every temp folder the tests make goes
 * under it (TMPDIR points there, and each test file gets its own subfolder, see per-file.ts),
 * so the teardown can remove all of it, including what a crashed test left behind.
 * The system user the root-only tests need is named per run and removed at the end.
 */
import { mkdtempSync, chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';

export default function globalSetup() {
  const base = process.env.L2_TEST_TMP_PARENT || '/tmp';
  const runDir = mkdtempSync(join(base, 'l2run-'));
  // The non-root test user must reach the folders made for it below.
  chmodSync(runDir, 0o755);
  writeFileSync(join(runDir, '.users'), '');
  process.env.L2_TEST_RUN_DIR = runDir;
  process.env.L2_TEST_USER = `l2t-${randomBytes(4).toString('hex')}`;
  process.env.TMPDIR = runDir;
}
