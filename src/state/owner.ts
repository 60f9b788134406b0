/**
 * Root runs (`docker compose exec cron l2backup snapshot` by hand): the programs become the
 * job user before they touch the volume, so no root-owned 0600 state can break the next cron
 * run (a lost failure alert, a backup reported DOWN). The job user is `L2_RUN_AS` (name or
 * uid) when set, else the first non-root owner of the state folder (`$BACKUP_ROOT/.l2`) or the
 * volume (`$BACKUP_ROOT`); a volume that root owns throughout stays root's. State that an older root run left is handed back to
 * the job user first.
 */
import { readFileSync, statSync, readdirSync, lstatSync, lchownSync, openSync, closeSync, fstatSync, fchownSync, constants as C } from 'node:fs';
import { join } from 'node:path';
import { ConfigError } from '../errors.js';

export interface JobUser {
  name?: string;
  uid: number;
  gid: number;
  /** Why this user: for the log line. */
  why: string;
}

interface PasswdEntry {
  name: string;
  uid: number;
  gid: number;
}

function passwd(): PasswdEntry[] {
  try {
    return readFileSync('/etc/passwd', 'utf8')
      .split('\n')
      .map((l) => l.split(':'))
      .filter((f) => f.length >= 4)
      .map((f) => ({ name: f[0]!, uid: Number(f[2]), gid: Number(f[3]) }));
  } catch {
    return [];
  }
}

/** The user a root run should become, or undefined to stay root. */
export function jobUser(backupRoot: string, runAs = process.env.L2_RUN_AS): JobUser | undefined {
  if (runAs !== undefined && runAs.trim() !== '') {
    const users = passwd();
    const v = runAs.trim();
    const u = users.find((e) => e.name === v) ?? (/^\d+$/.test(v) ? users.find((e) => e.uid === Number(v)) : undefined);
    if (u) return { ...u, why: `L2_RUN_AS=${v}` };
    // A uid with no /etc/passwd entry (a container's `user: "1000"`) is a user too, as it is when
    // it owns the volume and L2_RUN_AS is unset: its group is that of the folder it owns.
    const owned = /^\d+$/.test(v) ? volumeOwner(backupRoot, (uid) => uid === Number(v)) : undefined;
    if (owned) return { uid: owned.uid, gid: owned.gid, why: `L2_RUN_AS=${v}` };
    throw new ConfigError(`L2_RUN_AS="${v.slice(0, 40)}" is not a user on this machine${/^\d+$/.test(v) ? ' (a uid without an /etc/passwd entry must own $BACKUP_ROOT or its .l2, which gives its group)' : ''}; create it or unset L2_RUN_AS`);
  }
  const st = volumeOwner(backupRoot, (uid) => uid !== 0);
  if (!st) return undefined;
  // /etc/passwd read only here: root's own volume (the usual light command) needs no name.
  const u = passwd().find((e) => e.uid === st.uid);
  return { name: u?.name, uid: st.uid, gid: u?.gid ?? st.gid, why: `the owner of ${st.dir}` };
}

/** The first of `$BACKUP_ROOT/.l2` and `$BACKUP_ROOT` whose owner `wanted` accepts: its owner and group. */
function volumeOwner(backupRoot: string, wanted: (uid: number) => boolean): { dir: string; uid: number; gid: number } | undefined {
  for (const dir of [join(backupRoot, '.l2'), backupRoot]) {
    let st;
    try {
      st = statSync(dir);
    } catch {
      continue;
    }
    if (st.uid === 0) continue;
    if (wanted(st.uid)) return { dir, uid: st.uid, gid: st.gid };
    // The first non-root owner decides, as for the job user (a .l2 of another uid is not ours).
    return undefined;
  }
  return undefined;
}

/**
 * Hands state that root left under `dir` back to the job user. Walks by descriptors, never by
 * re-resolving paths: each folder is opened O_NOFOLLOW|O_DIRECTORY, fstat'ed and fchown'ed
 * through its fd, listed via /proc/self/fd/N, and its entries are reached as
 * /proc/self/fd/N/name. A job user who swaps a folder for a symlink mid-walk gets an ELOOP
 * (skipped), never root changing owners outside the volume. Links themselves are lchown'ed.
 */
export function handBack(dir: string, user: JobUser): number {
  let n = 0;
  const dirFlags = C.O_RDONLY | C.O_DIRECTORY | C.O_NOFOLLOW | C.O_NONBLOCK;
  const walk = (fd: number, depth: number) => {
    try {
      if (fstatSync(fd).uid === 0) {
        fchownSync(fd, user.uid, user.gid);
        n++;
      }
    } catch {}
    if (depth > 64) return;
    let names: string[];
    try {
      names = readdirSync(`/proc/self/fd/${fd}`);
    } catch {
      return;
    }
    for (const name of names) {
      const at = `/proc/self/fd/${fd}/${name}`;
      let st;
      try {
        st = lstatSync(at);
      } catch {
        continue;
      }
      if (st.isDirectory()) {
        let child: number;
        try {
          child = openSync(at, dirFlags);
        } catch {
          continue; // swapped for a link or removed meanwhile: not ours to follow
        }
        try {
          walk(child, depth + 1);
        } finally {
          closeSync(child);
        }
      } else if (st.uid === 0) {
        try {
          lchownSync(at, user.uid, user.gid);
          n++;
        } catch {}
      }
    }
  };
  let top: number;
  try {
    top = openSync(dir, dirFlags);
  } catch {
    return 0; // absent, or a link: nothing to hand back
  }
  try {
    walk(top, 0);
  } finally {
    closeSync(top);
  }
  return n;
}

/** Becomes the job user: groups, then gid, then uid (the order the kernel requires). */
export function becomeUser(user: JobUser): void {
  const p = process as NodeJS.Process & { initgroups?: (user: string, extraGroup: number) => void };
  if (user.name && p.initgroups) p.initgroups(user.name, user.gid);
  else process.setgroups!([user.gid]);
  process.setgid!(user.gid);
  process.setuid!(user.uid);
}
