/**
 * Each test file gets its own scratch folder under the run's (helpers/cleanup.ts scratch();
 * process.env inside a test is jest's copy, so TMPDIR cannot carry it) and removes it, with any mount under it and any process the file started through
 * the helpers, when the file ends. So a run leaves nothing behind, and a long run never piles
 * up gigabytes in /tmp.
 */
import { mkdtempSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { killTracked, mountsUnder, setScratch } from '../helpers/cleanup.js';

const parent = process.env.L2_TEST_RUN_DIR ?? tmpdir();
const fileDir = mkdtempSync(join(parent, 'f-'));
chmodSync(fileDir, 0o755);
setScratch(fileDir);

afterAll(async () => {
  await killTracked();
  for (const m of mountsUnder(fileDir)) execFileSync('umount', ['-l', m], { stdio: 'ignore' });
  setScratch(undefined);
  // GNU rm walks with openat, so a tree deeper than PATH_MAX goes too (Node's rm cannot remove one).
  if (!process.env.L2_TEST_KEEP) execFileSync('rm', ['-rf', fileDir], { stdio: 'ignore' });
});
