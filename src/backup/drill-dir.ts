/**
 * The drill's scratch folders (BACKUP_DRILL_DIR/l2drill-*) and their removal. Kept apart from
 * drill.ts so the nightly's leftover sweep (jobs.ts) can use it without importing the drill.
 */
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import type { Config } from '../config/index.js';
import { errnoCode } from '../errors.js';

export const DRILL_PREFIX = 'l2drill-';

/**
 * Removes a folder the drill restored into. A snapshot may hold folders without write or
 * search permission (mode 0500, 0000): those are opened up first, never following a symlink,
 * so a non-root job user can remove them.
 */
export async function removeTree(dir: string | Buffer): Promise<void> {
  try {
    await fs.rm(dir, { recursive: true, force: true });
    return;
  } catch (err) {
    const code = errnoCode(err);
    if (code !== 'EACCES' && code !== 'EPERM') throw err;
  }
  await openUp(Buffer.from(dir));
  await fs.rm(dir, { recursive: true, force: true });
}

async function openUp(dir: Buffer): Promise<void> {
  const st = await fs.lstat(dir).catch(() => undefined);
  if (!st?.isDirectory()) return;
  await fs.chmod(dir, 0o700).catch(() => {});
  const names = await fs.readdir(dir, { encoding: 'buffer' }).catch(() => [] as Buffer[]);
  for (const n of names) await openUp(Buffer.concat([dir, Buffer.from('/'), n]));
}

/**
 * Drill folders left by a drill that was killed outright (SIGKILL, power loss). Called by the
 * next drill and by the nightly's leftover sweep, both under the backup lock, which a running
 * drill holds: any drill folder seen then belongs to no live drill.
 */
export async function removeDrillLeftovers(cfg: Config): Promise<string[]> {
  // Only in a real folder: a symlink planted there would lead the sweep into someone else's files
  // (the drill itself refuses such a BACKUP_DRILL_DIR, naming it).
  const st = await fs.lstat(cfg.BACKUP_DRILL_DIR).catch(() => undefined);
  if (!st?.isDirectory()) return [];
  const names = await fs.readdir(cfg.BACKUP_DRILL_DIR).catch(() => [] as string[]);
  const removed: string[] = [];
  for (const n of names) {
    if (!n.startsWith(DRILL_PREFIX)) continue;
    const path = join(cfg.BACKUP_DRILL_DIR, n);
    await removeTree(path);
    removed.push(path);
  }
  return removed;
}
