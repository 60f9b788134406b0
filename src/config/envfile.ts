/**
 * Strict parser for the env file (`/app/.env`, docker compose style).
 * dotenv is not used: it silently skips malformed lines, and an operator must hear about a
 * broken line instead of running with half a configuration. Errors never quote the line,
 * which may hold a secret.
 */
import { readFileSync } from 'node:fs';
import { ConfigError, errnoCode } from '../errors.js';

const KEY = /^[A-Za-z_][A-Za-z0-9_]*$/;

export function parseEnvFile(text: string, file: string): Map<string, string> {
  const out = new Map<string, string>();
  const lines = text.replace(/^\uFEFF/, '').split(/\r?\n/);
  lines.forEach((raw, index) => {
    const where = `env file ${file} line ${index + 1}`;
    let line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    if (line.startsWith('export ')) line = line.slice(7).trimStart();
    const eq = line.indexOf('=');
    if (eq <= 0) throw new ConfigError(`${where}: expected KEY=VALUE; fix or comment out that line`);
    const key = line.slice(0, eq).trim();
    if (!KEY.test(key)) throw new ConfigError(`${where}: "${key.slice(0, 40)}" is not a valid variable name (letters, digits, _); fix that line`);
    out.set(key, parseValue(line.slice(eq + 1).trimStart(), where));
  });
  return out;
}

function parseValue(rest: string, where: string): string {
  const quote = rest[0];
  if (quote === '"' || quote === "'") {
    let value = '';
    let i = 1;
    for (; i < rest.length; i++) {
      const ch = rest[i]!;
      if (ch === quote) break;
      if (quote === '"' && ch === '\\' && i + 1 < rest.length) {
        const next = rest[++i]!;
        value += next === 'n' ? '\n' : next === 't' ? '\t' : next;
        continue;
      }
      value += ch;
    }
    if (i >= rest.length) throw new ConfigError(`${where}: unterminated ${quote === '"' ? 'double' : 'single'} quote; close the quote on the same line`);
    const tail = rest.slice(i + 1).trim();
    if (tail !== '' && !tail.startsWith('#')) throw new ConfigError(`${where}: unexpected text after the closing quote; remove it or quote the whole value`);
    return value;
  }
  // Unquoted: an inline comment needs a space before '#', as in docker compose.
  const hash = rest.search(/\s#/);
  return (hash >= 0 ? rest.slice(0, hash) : rest).trim();
}

/** Reads the env file; a missing file is `undefined` (the caller decides whether that is an error). */
export function readEnvFile(file: string): Map<string, string> | undefined {
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
  return parseEnvFile(text, file);
}
