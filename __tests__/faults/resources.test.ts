/**
 * Resource faults: the backups volume fills up during a snapshot (a size-limited tmpfs; needs
 * root, as CI has), and sources with symlink loops. Prints one summary line.
 */
import { existsSync, mkdirSync, readdirSync, writeFileSync, symlinkSync, lstatSync, mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { execa } from 'execa';
import { run, sandbox } from '../helpers/run.js';
import { makeTree } from '../helpers/tree.js';
import { startReceiver } from '../helpers/receiver.js';

const snapshots = (root: string) => readdirSync(root).filter((n) => /^\d{8}-\d{6}$/.test(n)).sort();
const tried: boolean[] = [];
afterAll(() => process.stderr.write(`\nresource suite: ${tried.length} cases tried, ${tried.filter(Boolean).length} survived, ${tried.filter((t) => !t).length} lost\n`));

test('the volume fills up mid-snapshot: clear failure, the alert gets out, nothing earlier is lost', async () => {
  let ok = false;
  const sb = sandbox();
  const { data, sources } = makeTree(sb.dir);
  const volume = mkdtempSync(join(tmpdir(), 'l2full-'));
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
