/**
 * Root runs (`docker compose exec cron l2backup snapshot` by hand): the programs become the
 * job user before they touch the volume, so no root-owned 0600 state can break the next cron
 * run (a lost failure alert, a backup reported DOWN). The job user is `L2_RUN_AS` (name or
 * uid) when set, else the first non-root owner of the state folder (`$BACKUP_ROOT/.l2`) or the
 * volume (`$BACKUP_ROOT`); a volume that root owns throughout stays root's. State that an older root run left is handed back to
 * the job user first.
 */
import { readFileSync, statSync, readdirSync, lstatSync, lchownSync } from 'node:fs';
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
  const users = passwd();
  if (runAs !== undefined && runAs.trim() !== '') {
    const v = runAs.trim();
    const u = users.find((e) => e.name === v) ?? (/^\d+$/.test(v) ? users.find((e) => e.uid === Number(v)) : undefined);
    if (!u) throw new ConfigError(`L2_RUN_AS="${v.slice(0, 40)}" is not a user on this machine; create it or unset L2_RUN_AS`);
    return { ...u, why: `L2_RUN_AS=${v}` };
  }
  for (const dir of [join(backupRoot, '.l2'), backupRoot]) {
    let st;
    try {
      st = statSync(dir);
    } catch {
      continue;
    }
    if (st.uid === 0) continue;
    const u = users.find((e) => e.uid === st.uid);
    return { name: u?.name, uid: st.uid, gid: u?.gid ?? st.gid, why: `the owner of ${dir}` };
  }
  return undefined;
}

/** Hands state that root left under `dir` back to the job user (links are not followed). */
export function handBack(dir: string, user: JobUser): number {
  let n = 0;
  const walk = (p: string) => {
    let st;
    try {
      st = lstatSync(p);
    } catch {
      return;
    }
    if (st.uid === 0) {
      try {
        lchownSync(p, user.uid, user.gid);
        n++;
      } catch {}
    }
    if (st.isDirectory()) for (const name of readdirSync(p)) walk(join(p, name));
  };
  walk(dir);
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
