/**
 * Walks one source with fast-glob (which also applies BACKUP_EXCLUDE). Symlinks are listed,
 * never followed. fast-glob's fs adapter is wrapped so that a directory that cannot be read or
 * vanishes mid-walk is reported and skipped instead of ending the walk.
 */
import fs from 'node:fs';

export interface WalkProblem {
  path: string;
  code: string;
}

export async function walkSource(root: string, exclude: string[], problems: WalkProblem[]): Promise<AsyncIterable<string>> {
  const { default: fg } = await import('fast-glob');
  const readdir = ((path: string, options: unknown, cb: (err: NodeJS.ErrnoException | null, res?: unknown) => void) => {
    const done = (err: NodeJS.ErrnoException | null, res?: unknown) => {
      if (err && (err.code === 'EACCES' || err.code === 'ENOENT' || err.code === 'EPERM' || err.code === 'ENOTDIR' || err.code === 'ELOOP')) {
        problems.push({ path, code: err.code });
        cb(null, []);
        return;
      }
      cb(err, res);
    };
    if (typeof options === 'function') fs.readdir(path, done as never);
    else fs.readdir(path, options as never, done as never);
  }) as typeof fs.readdir;
  return fg.stream('**', {
    cwd: root,
    dot: true,
    onlyFiles: false,
    followSymbolicLinks: false,
    ignore: exclude,
    unique: false,
    suppressErrors: false,
    throwErrorOnBrokenSymbolicLink: false,
    fs: { ...fs, readdir },
  }) as AsyncIterable<string>;
}
