/**
 * Crash safety: `l2backup nightly` (with remote upload) killed with SIGKILL at random moments,
 * one run after another on the same volume. After each kill every listed snapshot verifies,
 * `ls -t | head -1` never names a partial snapshot, no remote snapshot without its manifest is
 * listed complete, and the next run succeeds without help. Prints one summary line.
 */
import { existsSync, readdirSync, writeFileSync, appendFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { bin, run, sandbox } from '../helpers/run.js';
import { makeTree } from '../helpers/tree.js';
import { withS3Server, s3Env } from '../helpers/s3.js';
import { tracked, waitFor } from '../helpers/cleanup.js';

const CASES = Number(process.env.CRASH_CASES ?? 20);
const s3 = withS3Server();

test(`SIGKILL at ${CASES} random moments: nothing partial visible, everything listed verifies, the next run recovers`, async () => {
  const sb = sandbox();
  const { data, sources } = makeTree(sb.dir);
  for (let i = 0; i < 4; i++) writeFileSync(join(data, `models/weights-${i}.bin`), Buffer.alloc(24 * 1024 * 1024, i + 1));
  const env = { ...sb.env, ...s3Env(s3, { BACKUP_BUCKET: `s3://${s3.bucket}/crash`, BACKUP_MULTIPART_MB: '8' }), BACKUP_SOURCES: sources };
  let survived = 0;
  const problems: string[] = [];
  // Completed snapshots are never written again, so each is verified once, when it first appears.
  const checkedLocal = new Set<string>();
  const checkedRemote = new Set<string>();
  for (let c = 0; c < CASES; c++) {
    appendFileSync(join(data, 'logs/guardrails.log'), `case ${c}\n`);
    const child = tracked(execa('node', [bin('l2backup'), 'nightly'], { env, extendEnv: false, reject: false }));
    // A random moment once the run is under way (lock taken), so a slow start does not turn the case into a no-op.
    await waitFor('the nightly to take its lock', () => existsSync(join(sb.root, '.l2/locks/backup.lock')) || child.exitCode !== null);
    await new Promise((r) => setTimeout(r, Math.random() * 1400));
    child.kill('SIGKILL');
    await child;
    const before = problems.length;
    // What the runbook's Scenario 3 would pick must be complete.
    const latest = (await execa('sh', ['-c', `ls -t ${sb.root}/ | head -1`])).stdout.trim();
    if (latest && !existsSync(join(sb.root, latest, '.l2-manifest.json'))) problems.push(`case ${c}: ls -t names partial ${latest}`);
    for (const id of readdirSync(sb.root).filter((n) => /^\d{8}-\d{6}$/.test(n) && !checkedLocal.has(n))) {
      checkedLocal.add(id);
      const v = await run('l2backup', ['verify', id], env);
      if (v.exitCode !== 0) problems.push(`case ${c}: verify ${id} exit ${v.exitCode}: ${v.stderr.slice(0, 300)}`);
    }
    const remote = JSON.parse((await run('l2backup', ['list', '--remote', '--json'], env)).stdout) as { id: string; complete: boolean }[];
    for (const r of remote.filter((x) => x.complete && !checkedRemote.has(x.id))) {
      checkedRemote.add(r.id);
      const v = await run('l2backup', ['verify', r.id, '--remote'], env);
      if (v.exitCode !== 0) problems.push(`case ${c}: remote ${r.id} listed complete but fails verify: ${v.stderr.slice(0, 300)}`);
    }
    const next = await run('l2backup', ['nightly'], env);
    if (next.exitCode !== 0) problems.push(`case ${c}: next run exit ${next.exitCode}: ${next.stderr.slice(-500)}`);
    if (readdirSync(sb.root).some((n) => n.startsWith('.tmp-'))) problems.push(`case ${c}: a .tmp- leftover survived the next run`);
    if (problems.length === before) survived++;
  }
  const status = JSON.parse((await run('l2backup', ['status', '--json'], env)).stdout);
  expect(status.remote.pending).toEqual([]);
  process.stderr.write(`\ncrash suite: ${CASES} cases tried, ${survived} survived, ${CASES - survived} lost\n`);
  expect(problems).toEqual([]);
}, 1_800_000);
