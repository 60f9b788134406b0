/**
 * The env file (`/app/.env`), read as docker compose reads it, since the same file feeds
 * `docker compose` (rules: https://docs.docker.com/compose/env-file/
 * and compose-go's dotenv parser):
 * - LF or CRLF line endings; blank lines and lines starting with `#` are ignored;
 * - `KEY=VALUE`, `KEY: VALUE` (compose's yaml-style form), an optional `export ` prefix;
 *   names of letters, digits, `_` and `.`; a bare `KEY` takes the value from the environment;
 * - unquoted values end at the line's end or at ` #` (a comment needs a space before `#`);
 * - 'single quotes' are literal (`\'` is a quote); "double quotes" understand `\n \r \t \\ \" \$`;
 *   both may span several lines; after the closing quote only a comment may follow;
 * - unquoted and double-quoted values are interpolated: `$VAR`, `${VAR}`, `${VAR:-default}`,
 *   `${VAR-default}`, `${VAR:?error}`, `${VAR?error}`, `${VAR:+alt}`, `${VAR+alt}`, nested,
 *   `$$` for a literal `$`; the process environment first, then the file's earlier lines.
 * dotenv is not used: it silently skips malformed lines. A broken line is reported by its
 * number and the rule it breaks, never quoted: it may hold a secret.
 */
import { readFileSync } from 'node:fs';
import { ConfigError, errnoCode } from '../errors.js';

export interface EnvStatement {
  key: string;
  /** The value after quotes, escapes and interpolation. */
  value: string;
  /** The value as written (between the quotes, if any). */
  written: string;
  quote: '"' | "'" | '';
  /** 1-based, inclusive: a quoted value may span lines. */
  firstLine: number;
  lastLine: number;
  /** A bare `KEY` line: the value comes from the environment. */
  inherited: boolean;
}

export interface EnvProblem {
  line: number;
  rule: string;
}

export interface EnvParse {
  statements: EnvStatement[];
  values: Map<string, string>;
  /** Broken lines (lenient mode only; strict mode throws on the first). */
  problems: EnvProblem[];
}

export type Lookup = (name: string) => string | undefined;

export class EnvSyntaxError extends Error {
  constructor(
    readonly line: number,
    readonly rule: string,
  ) {
    super(`line ${line}: ${rule}`);
  }
}

const KEY_CHARS = /^[A-Za-z0-9_.]+/;
const NAME = /^[A-Za-z_][A-Za-z0-9_]*/;
// `\$` in double quotes: a `$` that interpolation must leave alone (NUL cannot occur in an env value).
const LITERAL_DOLLAR = '\u0000';

/** Splits into lines after turning CRLF (and lone CR) into LF, so both endings parse the same. */
export function envLines(text: string): string[] {
  return text.replace(/^\uFEFF/, '').replace(/\r\n?/g, '\n').split('\n');
}

/**
 * Parses env file text. `lookup` gives the process environment (it wins over the file, in
 * interpolation too). Strict mode throws `EnvSyntaxError` on the first broken line; lenient
 * mode (the redacted copy) records it and goes on with the next line.
 */
export function parseEnv(text: string, opts: { lookup?: Lookup; lenient?: boolean } = {}): EnvParse {
  const lines = envLines(text);
  const lookup = opts.lookup ?? (() => undefined);
  const values = new Map<string, string>();
  const statements: EnvStatement[] = [];
  const problems: EnvProblem[] = [];
  const resolve: Lookup = (name) => {
    const fromEnv = lookup(name);
    return fromEnv !== undefined ? fromEnv : values.get(name);
  };
  let i = 0;
  while (i < lines.length) {
    const start = i;
    try {
      const st = parseStatement(lines, i, resolve);
      i = st ? st.lastLine : i + 1;
      if (st) {
        statements.push(st);
        if (!st.inherited) values.set(st.key, st.value);
        else if (lookup(st.key) !== undefined) values.set(st.key, lookup(st.key)!);
      }
    } catch (err) {
      if (!(err instanceof EnvSyntaxError) || !opts.lenient) throw err;
      problems.push({ line: err.line, rule: err.rule });
      i = start + 1;
    }
  }
  return { statements, values, problems };
}

function parseStatement(lines: string[], index: number, resolve: Lookup): EnvStatement | undefined {
  const lineNo = index + 1;
  const fail = (rule: string, line = lineNo): never => {
    throw new EnvSyntaxError(line, rule);
  };
  let rest = lines[index]!.replace(/^[\s]+/, '');
  if (rest === '' || rest.startsWith('#')) return undefined;
  if (/^export\s/.test(rest)) rest = rest.slice(6).replace(/^\s+/, '');
  const key = KEY_CHARS.exec(rest)?.[0];
  if (!key) return fail('expected KEY=VALUE with a variable name of letters, digits, _ or . at the start');
  rest = rest.slice(key.length);
  const afterKey = rest.replace(/^[ \t]+/, '');
  if (afterKey === '' || afterKey.startsWith('#')) {
    if (afterKey.startsWith('#') && afterKey.length === rest.length) return fail('expected KEY=VALUE; the variable name has a character other than letters, digits, _ or .');
    return { key, value: '', written: '', quote: '', firstLine: lineNo, lastLine: lineNo, inherited: true };
  }
  const sep = afterKey[0];
  if (sep !== '=' && sep !== ':') {
    if (afterKey.length !== rest.length) return fail('expected KEY=VALUE; a variable name cannot contain spaces');
    return fail('expected KEY=VALUE; the variable name has a character other than letters, digits, _ or .');
  }
  const value = afterKey.slice(1).replace(/^[ \t]+/, '');
  const quote = value[0];
  if (quote === '"' || quote === "'") return quoted(lines, index, value, quote, key, resolve);
  // Unquoted: a comment needs whitespace before '#' (compose's rule).
  const hash = afterKey.slice(1).search(/[ \t]#/);
  const written = (hash >= 0 ? afterKey.slice(1, hash + 1) : afterKey.slice(1)).trim();
  return { key, value: interpolate(written, resolve, lineNo), written, quote: '', firstLine: lineNo, lastLine: lineNo, inherited: false };
}

function quoted(lines: string[], index: number, first: string, quote: '"' | "'", key: string, resolve: Lookup): EnvStatement {
  const openLine = index + 1;
  let text = first.slice(1);
  let written = '';
  let out = '';
  let line = index;
  for (;;) {
    for (let i = 0; i < text.length; i++) {
      const ch = text[i]!;
      if (ch === '\\' && i + 1 < text.length) {
        const next = text[i + 1]!;
        if (quote === "'") {
          // Single quotes are literal; only \' is an escaped quote.
          if (next === "'") {
            out += "'";
            written += "\\'";
            i++;
            continue;
          }
          out += ch;
          written += ch;
          continue;
        }
        const esc: Record<string, string> = { n: '\n', r: '\r', t: '\t', '\\': '\\', '"': '"', "'": "'", $: LITERAL_DOLLAR };
        out += esc[next] ?? `\\${next}`;
        written += ch + next;
        i++;
        continue;
      }
      if (ch === quote) {
        const tail = text.slice(i + 1);
        if (tail.trim() !== '' && !/^\s+#/.test(tail) && !tail.trim().startsWith('#')) {
          throw new EnvSyntaxError(line + 1, 'unexpected text after the closing quote; remove it or quote the whole value');
        }
        const value = quote === "'" ? out : interpolate(out, resolve, openLine).split(LITERAL_DOLLAR).join('$');
        return { key, value, written, quote, firstLine: openLine, lastLine: line + 1, inherited: false };
      }
      out += ch;
      written += ch;
    }
    line++;
    if (line >= lines.length) throw new EnvSyntaxError(openLine, `the ${quote === '"' ? 'double' : 'single'} quote opened on this line is never closed; close it (a quoted value may span lines)`);
    out += '\n';
    written += '\n';
    text = lines[line]!;
  }
}

const MAX_NESTING = 32;

/** compose's interpolation: `$$`, `$VAR`, `${VAR}`, `${VAR:-d}`, `${VAR-d}`, `${VAR:?e}`, `${VAR?e}`, `${VAR:+a}`, `${VAR+a}`. */
export function interpolate(text: string, resolve: Lookup, line: number): string {
  if (!text.includes('$')) return text;
  let out = '';
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!;
    if (ch !== '$') {
      out += ch;
      continue;
    }
    const next = text[i + 1];
    if (next === '$') {
      out += '$';
      i++;
      continue;
    }
    if (next === '{') {
      let depth = 1;
      let j = i + 2;
      for (; j < text.length && depth > 0; j++) {
        if (text[j] === '{') {
          // Bounded, so the recursion below stays shallow and the work linear in the line.
          if (++depth > MAX_NESTING) throw new EnvSyntaxError(line, `\${...} nested more than ${MAX_NESTING} deep; simplify the value`);
        } else if (text[j] === '}') depth--;
      }
      if (depth > 0) throw new EnvSyntaxError(line, 'a ${ is never closed with }; close it, or write $$ for a literal $');
      out += braced(text.slice(i + 2, j - 1), resolve, line);
      i = j - 1;
      continue;
    }
    const name = NAME.exec(text.slice(i + 1))?.[0];
    if (name) {
      out += resolve(name) ?? '';
      i += name.length;
      continue;
    }
    out += '$';
  }
  return out;
}

function braced(inner: string, resolve: Lookup, line: number): string {
  const name = NAME.exec(inner)?.[0];
  if (!name) throw new EnvSyntaxError(line, 'a ${...} expression needs a variable name (letters, digits, _); write $$ for a literal $');
  const op = /^(:-|-|:\?|\?|:\+|\+)?/.exec(inner.slice(name.length))![0];
  const arg = inner.slice(name.length + op.length);
  if (!op && arg !== '') throw new EnvSyntaxError(line, 'unsupported ${...} expression; compose knows ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error}, ${VAR?error}, ${VAR:+alt}, ${VAR+alt}');
  const value = resolve(name);
  const set = value !== undefined;
  const nonEmpty = set && value !== '';
  switch (op) {
    case ':-':
      return nonEmpty ? value! : interpolate(arg, resolve, line);
    case '-':
      return set ? value! : interpolate(arg, resolve, line);
    case ':?':
    case '?':
      if (op === ':?' ? nonEmpty : set) return value!;
      throw new EnvSyntaxError(line, `required variable ${name} is not set${op === ':?' ? ' or empty' : ''}`);
    case ':+':
      return nonEmpty ? interpolate(arg, resolve, line) : '';
    case '+':
      return set ? interpolate(arg, resolve, line) : '';
    default:
      return value ?? '';
  }
}

/** Parses the env file strictly; errors name the file, the line and the rule, never the text. */
export function parseEnvFile(text: string, file: string, env: NodeJS.ProcessEnv = process.env): Map<string, string> {
  try {
    return parseEnv(text, { lookup: (n) => env[n] }).values;
  } catch (err) {
    if (err instanceof EnvSyntaxError) throw new ConfigError(`env file ${file} line ${err.line}: ${err.rule}; fix or comment out that line`);
    throw err;
  }
}

/** Reads the env file; a missing file is `undefined` (the caller decides whether that is an error). */
export function readEnvFile(file: string, env: NodeJS.ProcessEnv = process.env): Map<string, string> | undefined {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const code = errnoCode(err);
    if (code === 'ENOENT') return undefined;
    if (code === 'EACCES') throw new ConfigError(`env file ${file} is not readable by this user (permission denied); fix its permissions or set L2_ENV_FILE`);
    if (code === 'EISDIR') throw new ConfigError(`env file ${file} is a directory; set L2_ENV_FILE to a file`);
    throw new ConfigError(`env file ${file} cannot be read (${code ?? 'error'}); fix it or set L2_ENV_FILE`);
  }
  return parseEnvFile(text, file, env);
}
