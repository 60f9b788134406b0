/**
 * The redacted copy of the env file stored at configs/envs/.env.backup (runbook Scenario 4:
 * `cp data/configs/envs/.env.backup .env`, then "edit sensitive values back in").
 * The file is read with the same parser as the configuration (compose's rules: CRLF, quotes
 * over several lines...), so a statement is redacted whole, whatever its line endings.
 * A value is a secret when its name suggests one (password, token, key, pin, mnemonic, DSN...),
 * when it holds URL userinfo, a token parameter, a `password=` or a well-known token shape, or
 * one of the secrets in force. It becomes a placeholder naming the variable: the key stays, so
 * operators see what to fill back in. Lines that are not statements (broken lines, stray
 * continuation lines) are replaced by a comment with their number: they may be a wrapped secret.
 * Kept statements lose their trailing comments (`LOG_LEVEL=info # old key was ...`), and a bare
 * line that may be a wrapped value rather than an inherited name is removed the same way.
 */
import { parseEnv, envLines, type EnvStatement } from '../config/envfile.js';
import { isSecretName, valueLooksSecret } from '../output/mask.js';

export function placeholder(name: string): string {
  return `"REDACTED-set-${name}"`;
}

// A bare `KEY` line (compose: taken from the environment) is kept only when it looks like a
// variable name, not like a wrapped value: no secret in force, not right after an empty
// `KEY=`, and not a long run of letters and digits without `_` unless the environment has it.
const PLAIN_NAME = /^[A-Z_][A-Z0-9_]{0,63}$/;

function keepBareLine(st: EnvStatement, prev: EnvStatement | undefined, knownSecrets: string[]): boolean {
  if (!PLAIN_NAME.test(st.key)) return false;
  if (knownSecrets.some((s) => s !== '' && (st.key.includes(s) || s.includes(st.key)))) return false;
  if (prev && !prev.inherited && prev.written === '' && prev.lastLine === st.firstLine - 1) return false;
  if (st.key.length >= 16 && !st.key.includes('_') && process.env[st.key] === undefined) return false;
  return true;
}

/** A kept statement as written, without a trailing comment (it may hold an old secret). */
function withoutComment(st: EnvStatement, lines: string[]): string[] {
  const first = lines[st.firstLine - 1]!;
  const lead = /^\s*(?:export\s+)?/.exec(first)![0];
  const q = st.quote;
  const text = `${lead}${st.key}=${q}${st.written}${q}`;
  return text.split('\n');
}

function isSecretStatement(st: EnvStatement, knownSecrets: string[]): boolean {
  if (st.inherited) return false;
  if (st.written === '' && st.value === '') return false;
  if (isSecretName(st.key)) return true;
  for (const v of [st.written, st.value]) {
    if (valueLooksSecret(v)) return true;
    if (knownSecrets.some((s) => s !== '' && v.includes(s))) return true;
  }
  return false;
}

// A commented-out assignment (`#POSTGRES_PASSWORD=old`) is redacted like a live one.
const COMMENTED = /^(\s*#+\s*(?:export\s+)?)([A-Za-z_][A-Za-z0-9_.]*)\s*[=:]\s*(.*)$/;

function redactComment(line: string, knownSecrets: string[]): string {
  const m = COMMENTED.exec(line);
  if (m && m[3]!.trim() !== '' && (isSecretName(m[2]!) || valueLooksSecret(m[3]!))) return `${m[1]}${m[2]}=${placeholder(m[2]!)}`;
  if (valueLooksSecret(line) || knownSecrets.some((s) => s !== '' && line.includes(s))) return '# (comment removed: it held a secret)';
  return line;
}

export function redactEnv(text: string, knownSecrets: string[]): string {
  const eol = /\r\n/.test(text) ? '\r\n' : '\n';
  const lines = envLines(text);
  // Unset variables resolve to a marker, so `${VAR:?}` never makes a compose-valid line look broken here.
  const { statements, problems } = parseEnv(text, { lenient: true, lookup: (n) => process.env[n] ?? '\u0001' });
  // Only blank lines, comments and non-secret statements are kept as written.
  const out: (string | undefined)[] = lines.map((line, i) => (line.trim() === '' ? line : line.trim().startsWith('#') ? redactComment(line, knownSecrets) : `# (line ${i + 1} removed: not a KEY=VALUE line)`));
  for (const p of problems) out[p.line - 1] = `# (line ${p.line} removed: ${p.rule.split(';')[0]})`;
  let prev: EnvStatement | undefined;
  for (const st of statements) {
    const before = prev;
    prev = st;
    if (st.inherited) {
      out[st.firstLine - 1] = keepBareLine(st, before, knownSecrets) ? st.key : `# (line ${st.firstLine} removed: not a KEY=VALUE line)`;
      continue;
    }
    if (!isSecretStatement(st, knownSecrets)) {
      const kept = withoutComment(st, lines);
      for (let l = st.firstLine - 1; l < st.lastLine; l++) out[l] = kept[l - st.firstLine + 1];
      continue;
    }
    const lead = /^\s*(?:export\s+)?/.exec(lines[st.firstLine - 1]!)![0];
    out[st.firstLine - 1] = `${lead}${st.key}=${placeholder(st.key)}`;
    for (let l = st.firstLine; l < st.lastLine; l++) out[l] = undefined;
  }
  return out.filter((l): l is string => l !== undefined).join(eol);
}
