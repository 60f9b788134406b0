/**
 * Trees as the model sees them: path -> node, with paths and symlink targets kept as latin1
 * strings so that every byte of a Linux name (newline, backslash, bytes that are not UTF-8)
 * round-trips exactly. Reading a real folder uses Buffer names throughout.
 */
import { lstatSync, readdirSync, readFileSync, readlinkSync, existsSync } from 'node:fs';

export type Node = { t: 'f'; data: Buffer; mode: number; sameSizeRewrite?: boolean } | { t: 'd' } | { t: 'l'; target: string };
export type Tree = Map<string, Node>;

export const B = (s: string): Buffer => Buffer.from(s, 'latin1');
export const L = (b: Buffer): string => b.toString('latin1');
export const join = (dir: string, key: string): Buffer => (key === '' ? B(dir) : Buffer.concat([B(dir), B('/'), B(key)]));

/** A path for humans: JSON-escaped, non-UTF-8 bytes as \xNN. */
export function show(key: string): string {
  const b = B(key);
  const u = b.toString('utf8');
  if (Buffer.from(u, 'utf8').equals(b)) return JSON.stringify(u);
  return JSON.stringify([...b].map((c) => (c >= 0x20 && c < 0x7f ? String.fromCharCode(c) : `\\x${c.toString(16).padStart(2, '0')}`)).join(''));
}

/** Names that issue 9 §1 "Any name Linux allows" is about. */
export function oddName(key: string): boolean {
  const b = B(key);
  return !Buffer.from(b.toString('utf8'), 'utf8').equals(b) || /[\n\\]/.test(key) || key.split('/').some((p) => p.startsWith('-'));
}

/** Reads a real folder (latin1 keys relative to it). `skip` drops names at any depth. */
export function readTree(dir: string, skip: (name: string) => boolean = () => false): Tree {
  const tree: Tree = new Map();
  const walk = (key: string) => {
    for (const nb of readdirSync(join(dir, key), { encoding: 'buffer' }) as Buffer[]) {
      const name = L(nb);
      if (skip(name)) continue;
      const k = key === '' ? name : `${key}/${name}`;
      const p = join(dir, k);
      const st = lstatSync(p);
      if (st.isSymbolicLink()) tree.set(k, { t: 'l', target: L(readlinkSync(p, { encoding: 'buffer' }) as Buffer) });
      else if (st.isDirectory()) {
        tree.set(k, { t: 'd' });
        walk(k);
      } else if (st.isFile()) tree.set(k, { t: 'f', data: readFileSync(p), mode: st.mode & 0o777 });
      else tree.set(k, { t: 'f', data: B(`<special file ${st.mode.toString(8)}>`), mode: 0 });
    }
  };
  if (existsSync(B(dir))) walk('');
  return tree;
}

export function cloneTree(t: Tree): Tree {
  return new Map([...t].map(([k, n]) => [k, { ...n }]));
}

export interface Difference {
  key: string;
  what: string;
  expected?: Node;
}

/** Differences between an expected and an actual tree; modes compared only when asked. */
export function diffTrees(expected: Tree, actual: Tree, modes: boolean): Difference[] {
  const out: Difference[] = [];
  for (const [k, e] of expected) {
    const a = actual.get(k);
    if (!a) out.push({ key: k, what: `missing ${show(k)} (${e.t})`, expected: e });
    else if (a.t !== e.t) out.push({ key: k, what: `${show(k)} is a ${a.t}, expected a ${e.t}`, expected: e });
    else if (e.t === 'f' && a.t === 'f') {
      if (!e.data.equals(a.data)) out.push({ key: k, what: `${show(k)}: content differs (${a.data.length} bytes, expected ${e.data.length})`, expected: e });
      else if (modes && e.mode !== a.mode) out.push({ key: k, what: `${show(k)}: mode ${a.mode.toString(8)}, expected ${e.mode.toString(8)}`, expected: e });
    } else if (e.t === 'l' && a.t === 'l' && e.target !== a.target) out.push({ key: k, what: `${show(k)}: link to ${show(a.target)}, expected ${show(e.target)}`, expected: e });
  }
  for (const k of actual.keys()) if (!expected.has(k)) out.push({ key: k, what: `unexpected ${show(k)} (${actual.get(k)!.t})` });
  return out;
}

/** What an in-place restore of `snap` over `live` must leave: snapshot entries win, extras stay. */
export function overlay(live: Tree, snap: Tree): Tree {
  const out = cloneTree(live);
  const keys = [...snap.keys()].sort((a, b) => a.split('/').length - b.split('/').length);
  for (const k of keys) {
    const s = snap.get(k)!;
    // Anything in the way that is not the same kind of folder goes, with what is below it.
    const parts = k.split('/');
    for (let i = 1; i < parts.length; i++) {
      const up = parts.slice(0, i).join('/');
      const n = out.get(up);
      if (n && n.t !== 'd') out.delete(up);
    }
    const cur = out.get(k);
    if (cur && !(cur.t === 'd' && s.t === 'd')) for (const x of [...out.keys()]) if (x === k || x.startsWith(`${k}/`)) out.delete(x);
    out.set(k, { ...s });
  }
  return out;
}
