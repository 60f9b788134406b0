/**
 * Resource faults: the backups volume fills up during a snapshot (a size-limited tmpfs; needs
 * root, as CI has), and sources with symlink loops. Prints one summary line.
 */
import { existsSync, mkdirSync, readdirSync, writeFileSync, symlinkSync, lstatSync, mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { run, sandbox } from '../helpers/run.js';
import { makeTree, snapshots } from '../helpers/tree.js';
import { startReceiver } from '../helpers/receiver.js';
import { testUser, tracked, scratch } from '../helpers/cleanup.js';

const tried: boolean[] = [];
afterAll(() => process.stderr.write(`\nresource suite: ${tried.length} cases tried, ${tried.filter(Boolean).length} survived, ${tried.filter((t) => !t).length} lost\n`));

test('the volume fills up mid-snapshot: clear failure, the alert gets out, nothing earlier is lost', async () => {
  let ok = false;
  const sb = sandbox();
  const { data, sources } = makeTree(sb.dir);
  const volume = mkdtempSync(join(scratch(), 'l2full-'));
  await execa('mount', ['-t', 'tmpfs', '-o', 'size=8m', 'tmpfs', volume]);
  const hook = await startReceiver();
  try {
    const env = { ...sb.env, BACKUP_ROOT: volume, BACKUP_SOURCES: sources, ALERT_WEBHOOK_URL: hook.url, ALERT_MIN_INTERVAL_MS: '0' };
    expect((await run('l2backup', ['nightly'], env)).exitCode).toBe(0);
    const [first] = snapshots(volume);
    writeFileSync(join(data, 'models/huge.bin'), Buffer.alloc(12 * 1024 * 1024, 1));
    const full = await run('l2backup', ['nightly'], env);
    expect(full.exitCode).toBe(1);
    expect(full.stderr).toMatch(/the backups volume .* is full: snapshot \d{8}-\d{6} was abandoned and removed/);
    expect(full.stderr).toMatch(/ALERT .*\[error\] backup nightly failed/);
    expect(hook.received.map((r) => r.body.text.split('\n')[0])).toContain('[ERROR] backup nightly failed');
    expect(snapshots(volume)).toEqual([first]);
    expect(readdirSync(volume).filter((n) => n.startsWith('.tmp-'))).toEqual([]);
    expect((await run('l2backup', ['verify', first!], env)).exitCode).toBe(0);
    ok = true;
  } finally {
    tried.push(ok);
    await hook.close();
    await execa('umount', [volume]);
  }
});

test('symlink loops and links out of the source are stored as links, never followed', async () => {
  let ok = false;
  try {
    const sb = sandbox();
    const { data, sources } = makeTree(sb.dir);
    mkdirSync(join(data, 'configs/loop'));
    symlinkSync('.', join(data, 'configs/loop/self'));
    symlinkSync('b', join(data, 'configs/a'));
    symlinkSync('a', join(data, 'configs/b'));
    symlinkSync('/', join(data, 'configs/root'));
    const res = await run('l2backup', ['nightly'], { ...sb.env, BACKUP_SOURCES: sources });
    expect(res.exitCode).toBe(0);
    const [id] = snapshots(sb.root);
    for (const l of ['loop/self', 'a', 'b', 'root']) expect(lstatSync(join(sb.root, id!, 'configs', l)).isSymbolicLink()).toBe(true);
    expect(existsSync(join(sb.root, id!, 'configs/root/etc'))).toBe(true); // through the link: it points at /, nothing was copied
    expect(readdirSync(join(sb.root, id!, 'configs'))).not.toContain('etc');
    const target = join(sb.dir, 'restored');
    expect((await run('l2backup', ['restore', 'latest', '--only', 'configs', '--target', target], sb.env)).exitCode).toBe(0);
    expect(lstatSync(join(target, 'configs/root')).isSymbolicLink()).toBe(true);
    ok = true;
  } finally {
    tried.push(ok);
  }
});

test('unreadable files and folders (as a non-root user) and a folder vanishing mid-walk: partial, warned, the rest kept', async () => {
  let ok = false;
  try {
    const user = await testUser();
    const dir = mkdtempSync(join(scratch(), 'l2perm-'));
    const { data, sources } = makeTree(dir);
    mkdirSync(join(dir, 'backups'));
    for (let i = 0; i < 300; i++) mkdirSync(join(data, 'logs', `churn-${i}`));
    await execa('chown', ['-R', `${user}:${user}`, dir]);
    await execa('chmod', ['755', dir]);
    writeFileSync(join(data, 'reports/secret.csv'), 'root only');
    await execa('chmod', ['600', join(data, 'reports/secret.csv')]);
    await execa('chown', ['root:root', join(data, 'reports/secret.csv')]);
    mkdirSync(join(data, 'configs/private'));
    writeFileSync(join(data, 'configs/private/x'), 'x');
    await execa('chmod', ['700', join(data, 'configs/private')]);
    // Folders that vanish while the walk runs.
    const churn = tracked(execa('sh', ['-c', `while :; do for i in $(seq 0 299); do rmdir ${data}/logs/churn-$i 2>/dev/null; done; sleep 0.01; done`], { reject: false }));
    const res = await execa('setpriv', ['--reuid', user, '--regid', user, '--init-groups', 'env', '-i', `PATH=${process.env.PATH}`, `BACKUP_ROOT=${join(dir, 'backups')}`, `BACKUP_SOURCES=${sources}`, 'L2_ENV_FILE=/dev/null', 'NO_COLOR=1', 'node', join(import.meta.dirname, '../../bin/l2backup.js'), 'nightly'], { reject: false, all: true });
    churn.kill();
    await churn;
    expect(res.exitCode).toBe(3);
    expect(res.all).toMatch(/reports: secret\.csv cannot be read \(EACCES\); skipped/);
    expect(res.all).toMatch(/configs: folder .*private cannot be read \(EACCES\); skipped/);
    expect(res.all).toMatch(/ALERT .*\[warning\] backup nightly partial/);
    expect(res.all).not.toMatch(/\n\s+at .*:\d+:\d+/);
    const [id] = snapshots(join(dir, 'backups'));
    expect(existsSync(join(dir, 'backups', id!, 'models/model.bin'))).toBe(true);
    ok = true;
  } finally {
    tried.push(ok);
  }
});

test('restore never writes outside its target, whatever the snapshot or the target contains', async () => {
  let ok = false;
  try {
    const sb = sandbox();
    const { sources } = makeTree(sb.dir);
    const env = { ...sb.env, BACKUP_SOURCES: sources };
    await run('l2backup', ['nightly'], env);
    const [id] = snapshots(sb.root);
    // A target whose models/artifacts is a link out of it.
    const target = join(sb.dir, 'target');
    const outside = join(sb.dir, 'outside');
    mkdirSync(join(target, 'models'), { recursive: true });
    mkdirSync(outside);
    symlinkSync(outside, join(target, 'models/artifacts'));
    const res = await run('l2backup', ['restore', id!, '--only', 'models', '--target', target], env);
    // The link is replaced by the snapshot's folder; nothing is written through it.
    expect(res.exitCode).toBe(0);
    expect(lstatSync(join(target, 'models/artifacts')).isDirectory()).toBe(true);
    expect(existsSync(join(target, 'models/artifacts/scaler.pkl'))).toBe(true);
    expect(readdirSync(outside)).toEqual([]);
    // A tampered file list with an escaping path (hash fixed up so only the path is wrong).
    const { gzipSync, gunzipSync } = await import('node:zlib');
    const { createHash } = await import('node:crypto');
    const { readFileSync } = await import('node:fs');
    const listPath = join(sb.root, id!, '.l2-files.jsonl.gz');
    const text = gunzipSync(readFileSync(listPath)).toString('utf8') + JSON.stringify({ s: 'models', p: '../../../evil', t: 'f', mode: 420, mtime: 0, size: 1, sha256: 'x' }) + '\n';
    writeFileSync(listPath, gzipSync(text));
    const mf = join(sb.root, id!, '.l2-manifest.json');
    const m = JSON.parse(readFileSync(mf, 'utf8'));
    m.filesSha256 = createHash('sha256').update(text).digest('hex');
    writeFileSync(mf, JSON.stringify(m));
    const t2 = join(sb.dir, 't2');
    const bad = await run('l2backup', ['restore', id!, '--target', t2], env);
    expect(bad.exitCode).toBe(1);
    expect(bad.stderr).toMatch(/unsafe path "models\/\.\.\/\.\.\/\.\.\/evil"; refusing to restore from it/);
    expect(existsSync(join(sb.dir, 'evil'))).toBe(false);
    ok = true;
  } finally {
    tried.push(ok);
  }
});
