/**
 * Real paths, not path text: whether two folders overlap is decided on their real paths and on
 * folder identity (dev, inode) up the tree, so a symlink, '..' or a bind mount cannot hide it.
 */
import { promises as fs } from 'node:fs';
import { dirname, basename, join, relative, isAbsolute, resolve } from 'node:path';

export function within(root: string, path: string): boolean {
  const rel = relative(root, path);
  return rel === '' || (!rel.startsWith('..') && !isAbsolute(rel));
}

/** The real path of `path`, or of its nearest existing ancestor plus the rest, for a path still to be created. */
export async function realPathOf(path: string): Promise<string> {
  const abs = resolve(path);
  const rest: string[] = [];
  for (let p = abs; ; p = dirname(p)) {
    try {
      return join(await fs.realpath(p), ...rest.reverse());
    } catch {
      if (p === dirname(p)) return abs;
      rest.push(basename(p));
    }
  }
}

async function hasAncestor(start: string, target: { dev: number; ino: number }): Promise<boolean> {
  for (let p = start; ; p = dirname(p)) {
    const st = await fs.stat(p).catch(() => undefined);
    if (st && st.dev === target.dev && st.ino === target.ino) return true;
    if (p === dirname(p)) return false;
  }
}

/** 'inside': `path` lies inside `root`; 'contains': `root` lies inside `path`; undefined: apart. */
export async function overlap(root: string, path: string): Promise<'inside' | 'contains' | undefined> {
  const rootReal = await realPathOf(root);
  const real = await realPathOf(path);
  const rootSt = await fs.stat(rootReal).catch(() => undefined);
  if (within(rootReal, real) || (rootSt && (await hasAncestor(real, rootSt)))) return 'inside';
  const pathExists = await fs.stat(real).catch(() => undefined);
  if (within(real, rootReal) || (pathExists && (await hasAncestor(rootReal, pathExists)))) return 'contains';
  return undefined;
}
