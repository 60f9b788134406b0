/** Small helpers for the snapshot/restore integrity suites: file lists, a held lock, a test user. */
import { readFileSync, writeFileSync, mkdirSync, readdirSync, lstatSync, readlinkSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { execa, type ResultPromise } from 'execa';

export interface ListEntry {
  s: string;
  p: string;
  pb?: string;
  t: string;
  size?: number;
  sha256?: string;
  mtimeNs?: string;
  changed?: boolean;
}

export function fileList(snapshotDir: string): ListEntry[] {
  return gunzipSync(readFileSync(join(snapshotDir, '.l2-files.jsonl.gz')))
    .toString('utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as ListEntry);
}

export function manifest(snapshotDir: string): { totals: Record<string, number>; warnings: string[] } {
  return JSON.parse(readFileSync(join(snapshotDir, '.l2-manifest.json'), 'utf8'));
}

/** Holds the backup lock as a live process (a `sleep`) would; kill() frees it. */
export async function holdBackupLock(root: string): Promise<{ kill: () => Promise<void> }> {
  const sleeper: ResultPromise = execa('sleep', ['600'], { reject: false });
  const pid = sleeper.pid!;
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const procStart = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  mkdirSync(join(root, '.l2/locks'), { recursive: true });
  writeFileSync(join(root, '.l2/locks/backup.lock'), JSON.stringify({ pid, host: hostname(), startedAt: new Date().toISOString(), command: 'test holder', token: 'test-token', procStart }) + '\n');
  return {
    kill: async () => {
      sleeper.kill('SIGKILL');
      await sleeper;
    },
  };
}

/** A throwaway system user for runs as the non-root job user; remove() deletes it again. */
export async function testUser(name: string): Promise<{ name: string; remove: () => Promise<void> }> {
  if ((await execa('id', ['-u', name], { reject: false })).exitCode !== 0) await execa('useradd', ['--no-create-home', '--shell', '/bin/sh', name]);
  return { name, remove: async () => void (await execa('userdel', [name], { reject: false })) };
}

/** name -> [type, content or target] for every entry below dir, names as latin1 (byte-exact). */
export function treeBytes(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (d: Buffer, rel: string) => {
    for (const name of readdirSync(d, { encoding: 'buffer' })) {
      const p = Buffer.concat([d, Buffer.from('/'), name]);
      const r = rel + '/' + name.toString('latin1');
      const st = lstatSync(p);
      if (st.isDirectory()) {
        out.set(r, 'd');
        walk(p, r);
      } else if (st.isSymbolicLink()) out.set(r, 'l:' + readlinkSync(p, { encoding: 'buffer' }).toString('latin1'));
      else out.set(r, 'f:' + readFileSync(p).toString('latin1'));
    }
  };
  walk(Buffer.from(dir), '');
  return out;
}
