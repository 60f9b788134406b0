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
 */
import { parseEnv, envLines, type EnvStatement } from '../config/envfile.js';
import { isSecretName, valueLooksSecret } from '../output/mask.js';

export function placeholder(name: string): string {
  return `"REDACTED-set-${name}"`;
}

// A bare `KEY` line (compose: taken from the environment) is kept only when it looks like a variable name.
const PLAIN_NAME = /^[A-Z_][A-Z0-9_]{0,63}$/;

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
  for (const st of statements) {
    if (st.inherited) {
      if (PLAIN_NAME.test(st.key)) out[st.firstLine - 1] = lines[st.firstLine - 1];
      continue;
    }
    if (!isSecretStatement(st, knownSecrets)) {
      for (let l = st.firstLine - 1; l < st.lastLine; l++) out[l] = lines[l];
      continue;
    }
    const lead = /^\s*(?:export\s+)?/.exec(lines[st.firstLine - 1]!)![0];
    out[st.firstLine - 1] = `${lead}${st.key}=${placeholder(st.key)}`;
    for (let l = st.firstLine; l < st.lastLine; l++) out[l] = undefined;
  }
  return out.filter((l): l is string => l !== undefined).join(eol);
}
