/**
 * Secrets recognised by their shape rather than by a known value: URL userinfo, token-like
 * query parameters, `password=` inside connection strings, well-known token formats, and
 * variable names that suggest a secret. Used by the output scrubber (every printed line), by
 * `config` and error hints, and by the redacted env copy in each snapshot.
 */

/** Query parameters whose value is a credential (`?token=`, `?api_key=`, `X-Amz-Signature`...). */
const SECRET_PARAM = /^(?:.*[_-])?(?:token|access[_-]?token|auth|authorization|key|api[_-]?key|apikey|secret|password|passwd|pass|pwd|sig|signature|credential|session|code|x-amz-signature|x-amz-credential|x-amz-security-token)$/i;

// scheme://userinfo@ (userinfo cannot hold '/', '?', '#' or '@' unencoded)
const USERINFO = /\b([a-z][a-z0-9+.-]{1,15}:\/\/)([^\s/?#@"'<>]+)@/gi;
// ?name=value or &name=value; a value ends at &, #, whitespace, a quote or a comma (list separator).
const QUERY_PARAM = /([?&])([A-Za-z0-9_.%-]+)=([^&#\s"'<>,]+)/g;

function paramName(raw: string): string {
  try {
    return decodeURIComponent(raw);
  } catch {
    return raw;
  }
}

/** Masks URL userinfo and the values of secret query parameters anywhere in `text`. */
export function maskUrlCredentials(text: string): string {
  let out = text;
  if (out.includes('://')) out = out.replace(USERINFO, '$1****@');
  if (out.includes('=')) out = out.replace(QUERY_PARAM, (m, sep: string, name: string) => (SECRET_PARAM.test(paramName(name)) ? `${sep}${name}=****` : m));
  return out;
}

/** The secret parts of the URLs in `text` (passwords, user names with a password, token values), to scrub by value. */
export function urlSecretParts(text: string): string[] {
  const out: string[] = [];
  for (const m of text.matchAll(USERINFO)) {
    const userinfo = m[2]!;
    const colon = userinfo.indexOf(':');
    for (const part of colon >= 0 ? [userinfo, userinfo.slice(colon + 1)] : [userinfo]) {
      out.push(part);
      try {
        out.push(decodeURIComponent(part));
      } catch {}
    }
  }
  for (const m of text.matchAll(QUERY_PARAM)) {
    if (!SECRET_PARAM.test(paramName(m[2]!))) continue;
    out.push(m[3]!);
    try {
      out.push(decodeURIComponent(m[3]!));
    } catch {}
  }
  return [...new Set(out.filter((s) => s !== '' && s !== '****'))];
}

/** Does `value` hold a credential in a URL (userinfo or a token parameter)? */
export function hasUrlCredentials(value: string): boolean {
  return maskUrlCredentials(value) !== value;
}

// `password=…` / `pwd=…` inside a connection string (libpq, JDBC, ADO.NET, Redis...).
const CONN_PASSWORD = /(?:^|[\s;&?,])(?:password|passwd|pwd|pass|secret|token|api[_-]?key|access[_-]?key|secret[_-]?key)\s*=\s*(?!\s|;|$)/i;
// Shapes of well-known tokens: Telegram bot, Slack, GitHub, AWS key ids, JWTs, PEM blocks, Stripe/OpenAI style.
const TOKEN_SHAPES = [
  /\b\d{6,12}:[A-Za-z0-9_-]{30,}\b/, // Telegram bot token
  /\bxox[abposr]-[A-Za-z0-9-]{10,}/, // Slack
  /\bgh[pousr]_[A-Za-z0-9]{30,}/, // GitHub
  /\bglpat-[A-Za-z0-9_-]{20,}/, // GitLab
  /\b(?:AKIA|ASIA)[0-9A-Z]{16}\b/, // AWS access key id
  /\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\./, // JWT
  /-----BEGIN [A-Z ]*PRIVATE KEY-----/, // PEM
  /\b(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]{16,}/, // Stripe
  /\bsk-[A-Za-z0-9_-]{20,}/, // OpenAI style
];

/** Does a value look like a secret, whatever its variable is called? */
export function valueLooksSecret(value: string): boolean {
  return hasUrlCredentials(value) || CONN_PASSWORD.test(value) || TOKEN_SHAPES.some((re) => re.test(value));
}

// Words that make a variable name a secret, matched against the name's `_`/camelCase parts.
const SECRET_WORDS = new Set([
  'PASSWORD', 'PASSWORDS', 'PASSWD', 'PASS', 'PWD', 'PASSPHRASE', 'SECRET', 'SECRETS', 'TOKEN', 'TOKENS', 'KEY', 'KEYS', 'APIKEY',
  'PIN', 'MNEMONIC', 'SEED', 'PRIVATE', 'CREDENTIAL', 'CREDENTIALS', 'CREDS', 'AUTH', 'DSN', 'CONN', 'CONNECTION', 'CONNSTR',
  'COOKIE', 'SESSION', 'SIGNING', 'WEBHOOK', 'SALT', 'OTP', 'TOTP',
]);
// Glued forms (`DBPASSWORD`, `AUTHTOKEN`, `PRIVATEKEY`) still count.
const SECRET_FRAGMENT = /PASSWORD|PASSWD|PASSPHRASE|SECRET|TOKEN|APIKEY|PRIVATEKEY|MNEMONIC|CREDENTIAL|CONNECTIONSTRING|CONNSTR|WEBHOOK/;

/** Does a variable's name suggest that its value is a secret? */
export function isSecretName(name: string): boolean {
  const upper = name.toUpperCase();
  if (SECRET_FRAGMENT.test(upper)) return true;
  const parts = name
    .replace(/([a-z0-9])([A-Z])/g, '$1_$2')
    .toUpperCase()
    .split(/[^A-Z0-9]+/);
  return parts.some((p) => SECRET_WORDS.has(p));
}
