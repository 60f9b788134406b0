/** `l2backup report -o FILE`: the file is checked before anything is gathered, and written atomically. */
import { promises as fs } from 'node:fs';
import { basename, dirname, join, relative, resolve, sep } from 'node:path';
import { UsageError, escapeControl } from '../errors.js';
import { FILE_MODE, writeFileAtomic } from '../state/files.js';

const shown = (s: string) => escapeControl(s.length > 120 ? `${s.slice(0, 117)}...` : s);

/** Real path of a folder (symlinks resolved); the path as given when it cannot be resolved. */
const real = (p: string) => fs.realpath(p).catch(() => resolve(p));
const within = (parent: string, child: string) => {
  const rel = relative(parent, child);
  return rel === '' || (!rel.startsWith(`..${sep}`) && rel !== '..' && !rel.startsWith(sep));
};

/**
 * `root` is BACKUP_ROOT: a page asked for by name never lands on the volume (it would replace a
 * state file such as runs.jsonl, or add an extra file to a snapshot that verify then fails),
 * except in the page's own folder, `.l2/report/`.
 */
export async function checkReportTarget(output: string, root: string): Promise<string> {
  if (output.trim() === '') throw new UsageError('-o is empty: name the page to write, e.g. -o /tmp/l2ops-status.html');
  const file = resolve(output);
  const dir = dirname(file);
  const st = await fs.stat(dir).catch(() => undefined);
  if (!st?.isDirectory()) throw new UsageError(`-o ${shown(output)}: the folder ${shown(dir)} does not exist; create it first or write elsewhere`);
  const existing = await fs.lstat(file).catch(() => undefined);
  const [realDir, realRoot] = await Promise.all([real(dir), real(root)]);
  if (within(realRoot, realDir) && !within(join(realRoot, '.l2', 'report'), realDir)) {
    throw new UsageError(`-o ${shown(output)} is inside the backups volume (BACKUP_ROOT ${shown(root)}), where it would replace state or change a snapshot; write it elsewhere, or leave out -o for ${shown(join(root, '.l2', 'report', 'index.html'))}`);
  }
  if (existing?.isDirectory()) throw new UsageError(`-o ${shown(output)} is a folder; name a file inside it, e.g. ${shown(join(file, 'status.html'))}`);
  if (existing && !existing.isFile()) throw new UsageError(`-o ${shown(output)} exists and is not a regular file (a symlink, fifo or device is never replaced); name a new file`);
  // A folder that takes no new files: one usage line now, not a failure after the gathering.
  const probe = join(dir, `.${basename(file)}.probe-${process.pid}`);
  const handle = await fs.open(probe, 'wx', 0o600).catch((err: NodeJS.ErrnoException) => {
    throw new UsageError(`-o ${shown(output)}: cannot create a file in ${shown(dir)} (${err.code ?? err.message}); write the page to a writable folder, e.g. -o /tmp/l2ops-status.html`);
  });
  await handle.close();
  await fs.rm(probe, { force: true });
  return file;
}

/** A page asked for by name is readable by others (0644): it is meant to be opened or served. */
export async function writeReportFile(file: string, html: string, userFile: boolean): Promise<void> {
  await writeFileAtomic(file, html, userFile ? 0o644 : FILE_MODE);
}
