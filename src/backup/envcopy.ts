/**
 * The redacted copy of the env file stored at configs/envs/.env.backup (runbook Scenario 4:
 * `cp data/configs/envs/.env.backup .env`, then "edit sensitive values back in"). Lines are
 * kept as they are, except that secret values become a placeholder naming the variable.
 */
const SECRET_NAME = /(KEY|SECRET|TOKEN|PASSWORD|PASSWD|PASS|PWD|CREDENTIAL|PRIVATE|WEBHOOK|AUTH|DSN|COOKIE|SESSION|SIGNING|API)/i;

export function placeholder(name: string): string {
  return `"REDACTED-set-${name}"`;
}

function urlHasCredentials(value: string): boolean {
  try {
    const u = new URL(value.replace(/^["']|["']$/g, ''));
    return Boolean(u.username || u.password || u.search);
  } catch {
    return false;
  }
}

export function redactEnv(text: string, knownSecrets: string[]): string {
  const lines = text.split('\n').map((line) => {
    const m = /^(\s*(?:export\s+)?)([A-Za-z_][A-Za-z0-9_]*)(\s*=\s*)(.*)$/.exec(line);
    if (!m) return knownSecrets.some((s) => line.includes(s)) ? '# (line removed: it contained a secret)' : line;
    const [, lead, name, eq, value] = m as unknown as [string, string, string, string, string];
    const trimmed = value.trim();
    if (trimmed === '' || trimmed === '""' || trimmed === "''") return line;
    if (SECRET_NAME.test(name) || urlHasCredentials(trimmed) || knownSecrets.some((s) => value.includes(s))) return `${lead}${name}${eq}${placeholder(name)}`;
    return line;
  });
  return lines.join('\n');
}
