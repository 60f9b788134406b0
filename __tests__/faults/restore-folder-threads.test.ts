/**
 * Local restore's copy threads and the folders they write into. Creating a file holds its
 * folder's lock in the kernel for the whole inode allocation, which on ext4 without a journal
 * scans past every recently deleted inode (milliseconds a file right after a tree was
 * removed). Two threads placing files into one folder at once then queue on that lock, the
 * waiter spinning on a CPU meanwhile: twice the CPU for no gain. So the small files of one
 * folder are placed by one thread at a time, and the threads work in different folders.
 * Checked on the real program under strace: the interval from each temp file's create to its
 * rename, per thread, never overlaps another thread's in the same folder.
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { bin, run, sandbox } from '../helpers/run.js';

const FOLDERS = 6;
const FILES = 120;

interface Span {
  tid: string;
  folder: string;
  start: number;
  end: number;
}

/** Each temp file's create-to-rename span from an `strace -f -ttt` log (names are d<k>-f<i>.log: the folder is in the name). */
function spans(log: string): Span[] {
  const created = new Map<string, { tid: string; at: number }>();
  const out: Span[] = [];
  for (const line of log.split('\n')) {
    const m = /^(\d+)\s+(\d+\.\d+)\s+(openat|rename)\((.*)$/.exec(line);
    if (!m) continue;
    const [, tid, at, call, rest] = m as unknown as [string, string, string, string, string];
    if (call === 'openat') {
      const tmp = /"[^"]*\/(\.l2restore-[^"/]+)".*O_CREAT/.exec(rest);
      if (tmp) created.set(tmp[1]!, { tid, at: Number(at) });
    } else {
      const names = /^"[^"]*\/(\.l2restore-[^"/]+)", "[^"]*\/(d\d+)-f\d+\.log"/.exec(rest);
      if (!names) continue;
      const c = created.get(names[1]!);
      if (!c) throw new Error(`no create seen for ${names[1]}`);
      expect(c.tid).toBe(tid);
      out.push({ tid, folder: names[2]!, start: c.at, end: Number(at) });
    }
  }
  return out;
}

test('local restore: no two copy threads place files into the same folder at the same time', async () => {
  const sb = sandbox();
  try {
    const logs = join(sb.dir, 'logs');
    for (let d = 0; d < FOLDERS; d++) {
      mkdirSync(join(logs, `d${d}`), { recursive: true });
      for (let i = 0; i < FILES; i++) writeFileSync(join(logs, `d${d}`, `d${d}-f${i}.log`), `folder ${d} file ${i}\n`.repeat(20));
    }
    const env = { ...sb.env, BACKUP_SOURCES: `logs=${logs}` };
    expect((await run('l2backup', ['snapshot'], env)).exitCode).toBe(0);
    const target = join(sb.dir, 'target');
    const trace = join(sb.dir, 'strace.txt');
    const res = await execa('strace', ['-f', '-qq', '-ttt', '-s', '256', '-e', 'trace=openat,rename', '-o', trace, 'node', bin('l2backup'), 'restore', 'latest', '--target', target, '--no-pre-restore'], { env, extendEnv: false, reject: false, all: true, timeout: 280_000 });
    expect(res.exitCode).toBe(0);
    for (let d = 0; d < FOLDERS; d++) expect(readFileSync(join(target, 'logs', `d${d}`, `d${d}-f7.log`), 'utf8')).toBe(`folder ${d} file 7\n`.repeat(20));

    const all = spans(readFileSync(trace, 'utf8'));
    expect(all).toHaveLength(FOLDERS * FILES);
    // The restore did use more than one thread (or there would be nothing to check).
    expect(new Set(all.map((s) => s.tid)).size).toBeGreaterThan(1);
    const clashes: string[] = [];
    for (let d = 0; d < FOLDERS; d++) {
      const here = all.filter((s) => s.folder === `d${d}`);
      for (const a of here) for (const b of here) if (a.tid < b.tid && a.start <= b.end && b.start <= a.end) clashes.push(`d${d}: threads ${a.tid} and ${b.tid}`);
    }
    expect([...new Set(clashes)]).toEqual([]);
  } finally {
    rmSync(sb.dir, { recursive: true, force: true });
  }
}, 300_000);
