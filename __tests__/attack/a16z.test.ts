/**
 * Attack tests (helper a16z) on the light start-up commits (f1b77b2, ff4fc3f, 52e53fc) and the
 * end-of-run hook's exit-2 rule (0aa8ce6). Each runs the built bin/ programs as child processes.
 */
import { chownSync, mkdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { run, sandbox } from '../helpers/run.js';

describe('a run that fails with exit 2 after it recorded its failure', () => {
  it('still rewrites the metrics: l2backup_last_run_status says failed, not the last ok', async () => {
    const sb = sandbox();
    const real = join(sb.dir, 'real');
    const root = join(real, 'bk');
    const other = join(sb.dir, 'other');
    const metrics = join(sb.dir, 'metrics');
    for (const d of [root, other, metrics]) mkdirSync(d, { recursive: true });
    writeFileSync(join(other, 'f'), 'x');
    const env = { ...sb.env, BACKUP_ROOT: root, L2_METRICS_DIR: metrics };
    const ok = await run('l2backup', ['nightly'], { ...env, BACKUP_SOURCES: `s=${other}` });
    expect(ok.exitCode).toBe(0);
    expect(readFileSync(join(metrics, 'l2ops.prom'), 'utf8')).toContain('l2backup_last_run_status{status="ok"} 1');
    // A source that is a symlink to the folder holding BACKUP_ROOT: the configuration check
    // compares paths as written, the snapshot finds the overlap once links are followed, records
    // the run as failed, alerts, and exits 2.
    const link = join(sb.dir, 'lnk');
    symlinkSync(real, link);
    const bad = await run('l2backup', ['nightly'], { ...env, BACKUP_SOURCES: `s=${link}` });
    expect(bad.exitCode).toBe(2);
    expect(JSON.parse(readFileSync(join(root, '.l2', 'backup', 'last-run.json'), 'utf8')).status).toBe('failed');
    const prom = readFileSync(join(metrics, 'l2ops.prom'), 'utf8');
    expect(prom).toContain('l2backup_last_run_status{status="failed"} 1');
    expect(prom).toContain('l2backup_last_run_status{status="ok"} 0');
  }, 300_000);
});

describe('root runs: L2_RUN_AS as a uid with no /etc/passwd entry (README: "name or uid")', () => {
  const uid = 4321;
  const gid = 4322;
  const asRoot = process.getuid?.() === 0 ? it : it.skip;
  asRoot('becomes that uid when the volume is its own, as it does with L2_RUN_AS unset', async () => {
    expect(readFileSync('/etc/passwd', 'utf8').split('\n').some((l) => l.split(':')[2] === String(uid))).toBe(false);
    const sb = sandbox();
    chownSync(sb.dir, uid, gid);
    chownSync(sb.root, uid, gid);
    const src = join(sb.dir, 'src');
    mkdirSync(src);
    writeFileSync(join(src, 'f'), 'x');
    const env = { ...sb.env, BACKUP_SOURCES: `s=${src}` };
    const record = join(sb.root, '.l2', 'backup', 'last-run.json');
    const unset = await run('l2backup', ['snapshot'], env);
    expect(unset.exitCode).toBe(0);
    expect(statSync(record)).toMatchObject({ uid, gid });
    rmSync(join(sb.root, '.l2'), { recursive: true });
    const byUid = await run('l2backup', ['snapshot'], { ...env, L2_RUN_AS: String(uid) });
    expect(byUid.stderr).not.toContain('not a user');
    expect(byUid.exitCode).toBe(0);
    expect(statSync(record)).toMatchObject({ uid, gid });
  }, 300_000);

  asRoot('is still exit 2, one line, when no folder of the volume tells its group', async () => {
    const sb = sandbox();
    const r = await run('l2alert', ['buffer-status'], { ...sb.env, L2_RUN_AS: String(uid) });
    expect(r.exitCode).toBe(2);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toContain('L2_RUN_AS');
  }, 300_000);
});
