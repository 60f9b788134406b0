/**
 * Building a snapshot (issue 9, section 1): what must never be stored wrong, run against the
 * built l2backup on real files.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync, statSync, lstatSync, symlinkSync, truncateSync, rmSync, mkdtempSync, openSync, writeSync, closeSync, chmodSync, readdirSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { execa } from 'execa';
import { bin, run, sandbox } from '../helpers/run.js';
import { makeTree, snapshots } from '../helpers/tree.js';
import { fileList, manifest, testUser } from '../helpers/snap.js';

const STACK = /\n\s+at .*:\d+:\d+/;

function setup(extra: Record<string, string> = {}) {
  const sb = sandbox();
  made.push(sb.dir);
  const { data, sources } = makeTree(sb.dir);
  return { ...sb, data, env: { ...sb.env, BACKUP_SOURCES: sources, ...extra } };
}

const made: string[] = [];
afterAll(() => {
  for (const d of made) rmSync(d, { recursive: true, force: true });
});

test('a file rewritten with the same size and the old mtime (cp -p, rsync -a) is stored with its new content', async () => {
  const s = setup();
  const file = join(s.data, 'reports/daily.csv');
  const before = statSync(file);
  expect((await run('l2backup', ['snapshot'], s.env)).exitCode).toBe(0);
  const replacement = join(s.dir, 'new.csv');
  writeFileSync(replacement, 'date,pnl\n2025-10-03,99.9\n'); // same length as the original
  await execa('touch', ['-r', file, replacement]); // the old times, to the nanosecond
  await execa('cp', ['-p', replacement, file]);
  expect(statSync(file).size).toBe(before.size);
  expect(statSync(file, { bigint: true }).mtimeNs).toBe(statSync(replacement, { bigint: true }).mtimeNs);
  expect((await run('l2backup', ['snapshot'], s.env)).exitCode).toBe(0);
  const [, second] = snapshots(s.root);
  expect(readFileSync(join(s.root, second!, 'reports/daily.csv'), 'utf8')).toBe('date,pnl\n2025-10-03,99.9\n');
  expect((await run('l2backup', ['verify', second!], s.env)).exitCode).toBe(0);
});

test('a damaged base copy (wrong size or type) is never linked into the next snapshot: copied from the source, with a warning', async () => {
  const s = setup();
  expect((await run('l2backup', ['snapshot'], s.env)).exitCode).toBe(0);
  const [first] = snapshots(s.root);
  truncateSync(join(s.root, first!, 'models/model.bin'), 10);
  rmSync(join(s.root, first!, 'reports/daily.csv'));
  symlinkSync('/etc/hostname', join(s.root, first!, 'reports/daily.csv'));
  const res = await run('l2backup', ['snapshot'], s.env);
  expect(res.exitCode).toBe(0);
  expect(res.stderr).toMatch(/base copy of model\.bin no longer matches its file list/);
  const [, second] = snapshots(s.root);
  expect(readFileSync(join(s.root, second!, 'models/model.bin')).equals(readFileSync(join(s.data, 'models/model.bin')))).toBe(true);
  expect(lstatSync(join(s.root, second!, 'reports/daily.csv')).isFile()).toBe(true);
  expect(readFileSync(join(s.root, second!, 'reports/daily.csv'), 'utf8')).toBe(readFileSync(join(s.data, 'reports/daily.csv'), 'utf8'));
  expect((await run('l2backup', ['verify', second!], s.env)).exitCode).toBe(0);
});

test('durable before visible: data synced (syncfs or fsync) before the publishing rename, the parent folder fsynced after', async () => {
  const s = setup();
  const trace = join(s.dir, 'trace');
  const res = await execa('strace', ['-f', '-y', '-qq', '-e', 'trace=fsync,fdatasync,syncfs,rename,renameat,renameat2', '-o', trace, 'node', bin('l2backup'), 'snapshot'], { env: s.env, extendEnv: false, reject: false });
  expect(res.exitCode).toBe(0);
  const lines = readFileSync(trace, 'utf8').split('\n');
  const publish = lines.findIndex((l) => /rename/.test(l) && l.includes('.tmp-') && !/= -1/.test(l));
  expect(publish).toBeGreaterThan(-1);
  const before = lines.slice(0, publish);
  const synced = before.some((l) => /syncfs\(/.test(l) && !/= -1/.test(l)) || before.some((l) => /fsync\(\d+<[^>]*model\.bin>/.test(l));
  expect(synced).toBe(true);
  expect(lines.slice(publish + 1).some((l) => new RegExp(`fsync\\(\\d+<${s.root.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}>\\)`).test(l))).toBe(true);
});

test('a read-only (0444) file that changes while it is read is retried and backed up, also as the non-root job user', async () => {
  const user = await testUser('l2ops-ro-test');
  const dir = mkdtempSync('/tmp/l2ro-');
  made.push(dir);
  try {
    const { data, sources } = makeTree(dir);
    mkdirSync(join(dir, 'backups'));
    const log = join(data, 'logs/ro.log');
    writeFileSync(log, Buffer.alloc(24 * 1024 * 1024, 97));
    await execa('chown', ['-R', `${user.name}:${user.name}`, dir]);
    await execa('chmod', ['755', dir]);
    chmodSync(log, 0o444);
    // root appends while the user's backup reads (root may write a 0444 file).
    const writer = execa('node', ['-e', `const fs=require('fs');setInterval(()=>fs.appendFileSync(${JSON.stringify(log)}, 'x'.repeat(4096)),1)`], { reject: false });
    try {
      const res = await execa('setpriv', ['--reuid', user.name, '--regid', user.name, '--clear-groups', 'env', '-i', `PATH=${process.env.PATH}`, `BACKUP_ROOT=${join(dir, 'backups')}`, `BACKUP_SOURCES=${sources}`, 'L2_ENV_FILE=/dev/null', 'NO_COLOR=1', 'node', bin('l2backup'), 'nightly'], { reject: false, all: true });
      expect(res.all).not.toMatch(/ro\.log cannot be read/);
      expect(res.all).not.toMatch(STACK);
      expect(res.exitCode).toBe(0);
      expect(res.all).toMatch(/logs: ro\.log changed during backup; stored what was read after 3 tries/);
    } finally {
      writer.kill();
      await writer;
    }
    const [id] = snapshots(join(dir, 'backups'));
    const entry = fileList(join(dir, 'backups', id!)).find((e) => e.s === 'logs' && e.p === 'ro.log');
    expect(entry?.size).toBeGreaterThanOrEqual(24 * 1024 * 1024);
    expect(statSync(join(dir, 'backups', id!, 'logs/ro.log')).size).toBe(entry!.size);
  } finally {
    await user.remove();
  }
});

test("BACKUP_EXCLUDE folder patterns ('cache/', '**/tmp/') leave the folders out instead of failing the backup", async () => {
  const s = setup({ BACKUP_EXCLUDE: 'cache/,**/tmp/,*.swp' });
  mkdirSync(join(s.data, 'models/cache/deep'), { recursive: true });
  writeFileSync(join(s.data, 'models/cache/deep/blob'), 'cached');
  mkdirSync(join(s.data, 'reports/2025/tmp'), { recursive: true });
  writeFileSync(join(s.data, 'reports/2025/tmp/scratch'), 'scratch');
  writeFileSync(join(s.data, 'reports/2025/keep.csv'), 'keep');
  writeFileSync(join(s.data, 'reports/x.swp'), 'swap');
  const res = await run('l2backup', ['snapshot'], s.env);
  expect(res.stderr).not.toMatch(STACK);
  expect(res.exitCode).toBe(0);
  const [id] = snapshots(s.root);
  expect(existsSync(join(s.root, id!, 'models/cache'))).toBe(false);
  expect(existsSync(join(s.root, id!, 'reports/2025/tmp'))).toBe(false);
  expect(existsSync(join(s.root, id!, 'reports/x.swp'))).toBe(false);
  expect(readFileSync(join(s.root, id!, 'reports/2025/keep.csv'), 'utf8')).toBe('keep');
  expect(fileList(join(s.root, id!)).some((e) => e.p.includes('cache') || e.p.includes('tmp'))).toBe(false);
});

describe('a source and BACKUP_ROOT that overlap by their real paths: exit 2, nothing built', () => {
  test.each(['symlink', 'dotdot', 'root-inside', 'bind'] as const)('%s', async (how) => {
    const s = setup();
    let sources = s.env.BACKUP_SOURCES;
    let root = s.root;
    const mnt = join(s.dir, 'mnt');
    if (how === 'symlink') {
      symlinkSync(s.root, join(s.dir, 'link-to-backups'));
      sources += `,sneaky=${join(s.dir, 'link-to-backups')}`;
    } else if (how === 'dotdot') {
      sources += `,sneaky=${join(s.data, 'models', '..', '..', 'backups')}`;
    } else if (how === 'root-inside') {
      symlinkSync(join(s.data, 'models'), join(s.dir, 'models-link'));
      root = join(s.dir, 'models-link', 'backups');
      mkdirSync(root);
    } else {
      mkdirSync(mnt);
      await execa('mount', ['--bind', s.root, mnt]);
      sources += `,sneaky=${mnt}`;
    }
    try {
      const res = await run('l2backup', ['snapshot'], { ...s.env, BACKUP_SOURCES: sources, BACKUP_ROOT: root });
      expect(res.stderr).not.toMatch(STACK);
      expect(res.stderr).toMatch(/overlap/);
      expect(res.exitCode).toBe(2);
      expect(snapshots(root)).toEqual([]);
    } finally {
      if (how === 'bind') await execa('umount', [mnt]);
    }
  });
});

test('a file swapped for a symlink during the backup never makes the job store what the link points to; a vanishing symlink is churn', async () => {
  const s = setup();
  const secret = join(s.dir, 'secret.bin');
  writeFileSync(secret, Buffer.alloc(3 * 1024 * 1024, 0x53)); // 'S'
  const real = join(s.dir, 'real.bin');
  writeFileSync(real, Buffer.alloc(3 * 1024 * 1024, 0x52)); // 'R'
  const bigs = Array.from({ length: 6 }, (_, i) => join(s.data, `models/big-${i}.bin`));
  // Swaps each file between a hard link of real.bin and a symlink to secret.bin, as fast as renames go.
  const swapper = `const fs=require('fs');const bigs=${JSON.stringify(bigs)};for(;;){for(const b of bigs){try{fs.symlinkSync(${JSON.stringify(secret)},b+'.l');fs.renameSync(b+'.l',b);fs.linkSync(${JSON.stringify(real)},b+'.f');fs.renameSync(b+'.f',b)}catch{}}}`;
  const swap = execa('node', ['-e', swapper], { reject: false });
  try {
    for (let i = 0; i < 4; i++) {
      const res = await run('l2backup', ['snapshot'], { ...s.env, BACKUP_EXCLUDE: '**/*.l,**/*.f' });
      expect(res.stderr).not.toMatch(STACK);
      expect(res.exitCode).toBe(0);
    }
  } finally {
    swap.kill();
    await swap;
  }
  for (const id of snapshots(s.root)) {
    for (const b of bigs) {
      const p = join(s.root, id, 'models', b.split('/').pop()!);
      const st = lstatSync(p, { throwIfNoEntry: false });
      if (st?.isFile()) expect(readFileSync(p).includes(0x53)).toBe(false);
    }
  }
});

test('sparse files stay sparse in the snapshot', async () => {
  const s = setup();
  const sparse = join(s.data, 'models/sparse.img');
  const fd = openSync(sparse, 'w');
  writeSync(fd, randomBytes(8192), 0, 8192, 128 * 1024 * 1024);
  closeSync(fd);
  truncateSync(sparse, 256 * 1024 * 1024);
  expect(statSync(sparse).blocks * 512).toBeLessThan(1024 * 1024);
  expect((await run('l2backup', ['snapshot'], s.env)).exitCode).toBe(0);
  const [id] = snapshots(s.root);
  const copy = statSync(join(s.root, id!, 'models/sparse.img'));
  expect(copy.size).toBe(256 * 1024 * 1024);
  expect(copy.blocks * 512).toBeLessThan(1024 * 1024);
  expect((await run('l2backup', ['verify', id!], s.env)).exitCode).toBe(0);
});

test('the env copy goes into the snapshot only: a symlinked configs/envs never leads the job to the live file', async () => {
  const s = setup();
  const live = join(s.dir, 'live-envs');
  mkdirSync(live);
  writeFileSync(join(live, '.env.backup'), 'LIVE=1\n');
  writeFileSync(join(live, 'prod.env'), 'X=1\n');
  symlinkSync(live, join(s.data, 'configs/envs'));
  writeFileSync(s.envFile, 'MODE=paper\nBROKER_API_TOKEN=supersecret\n');
  const res = await run('l2backup', ['snapshot'], s.env);
  expect(res.stderr).not.toMatch(STACK);
  expect(res.exitCode).toBe(0);
  expect(readFileSync(join(live, '.env.backup'), 'utf8')).toBe('LIVE=1\n');
  expect(readdirSync(live).sort()).toEqual(['.env.backup', 'prod.env']);
  const [id] = snapshots(s.root);
  expect(lstatSync(join(s.root, id!, 'configs/envs')).isSymbolicLink()).toBe(true);
  const copy = readFileSync(join(s.root, id!, 'configs/.env.backup.redacted'), 'utf8');
  expect(copy).toMatch(/REDACTED-set-BROKER_API_TOKEN/);
  expect(manifest(join(s.root, id!)).warnings.join('\n')).toMatch(/configs\/envs is not a folder/);
});
