/**
 * Secrets recognised by their shape rather than by a known value: URL userinfo, token-like
 * query parameters, `password=` inside connection strings, well-known token formats, and
 * variable names that suggest a secret. Used by the output scrubber (every printed line), by
 * `config` and error hints, and by the redacted env copy in each snapshot.
 */

/** Query parameters whose value is a credential (`?token=`, `?api_key=`, `X-Amz-Signature`...). */
const SECRET_PARAM = /^(?:.*[_-])?(?:token|access[_-]?token|auth|authorization|key|api[_-]?key|apikey|secret|password|passwd|pass|pwd|sig|signature|credential|session|code|x-amz-signature|x-amz-credential|x-amz-security-token)$/i;

// scheme://userinfo@ as the WHATWG URL parser reads it: http(s)/ws(s)/ftp take any number of
// '/' or '\\' after the colon, and the userinfo runs to the LAST '@' before the host ends (at
// '/', '?', '#' or '\\'), so it may hold '@', quotes, '<'... In free text a URL is taken to
// end at whitespace (a whole value is parsed exactly: wholeUserinfo).
const SCHEME = String.raw`\b((?:https?|wss?|ftp):[/\\]*|[a-z][a-z0-9+.-]{1,15}:\/\/)`;
const USERINFO = new RegExp(`${SCHEME}([^\\s/?#\\\\]*)@`, 'gi');
const WHOLE_USERINFO = new RegExp(`^\\s*${SCHEME}([^/?#\\\\]*)@`, 'i');
// ?name=value or &name=value; a value ends at &, #, whitespace, a quote or a comma (list separator).
const QUERY_PARAM = /([?&])([A-Za-z0-9_.%-]+)=([^&#\s"'<>,]+)/g;

function paramName(raw: string): string {
  try {
    return decodeURIComponent(raw);
  } catch {
    return raw;
  }
}

/** A whole value that the URL parser accepts with credentials: its scheme part and raw userinfo, exactly. */
function wholeUserinfo(value: string): { scheme: string; userinfo: string } | undefined {
  if (!value.includes('@')) return undefined;
  let url: URL;
  try {
    url = new URL(value.trim());
  } catch {
    return undefined;
  }
  if (!url.username && !url.password) return undefined;
  const m = WHOLE_USERINFO.exec(value);
  return m ? { scheme: m[1]!, userinfo: m[2]! } : undefined;
}

// A `name=url,name=url` list (HEALTH_ENDPOINTS...): each item's URL is a whole value.
const LIST_ITEM = /^(\s*[A-Za-z0-9_.-]+=)?([^,]*)$/;

function maskUserinfo(text: string): string {
  if (wholeUserinfo(text)) return text.replace(WHOLE_USERINFO, '$1****@');
  if (text.includes(',')) {
    const items = text.split(',');
    const parsed = items.map((item) => LIST_ITEM.exec(item));
    if (parsed.every((m) => m)) {
      return parsed.map((m) => (m![1] ?? '') + (wholeUserinfo(m![2]!) ? m![2]!.replace(WHOLE_USERINFO, '$1****@') : m![2]!.replace(USERINFO, '$1****@'))).join(',');
    }
  }
  return text.replace(USERINFO, '$1****@');
}

function userinfos(text: string): string[] {
  const whole = wholeUserinfo(text);
  if (whole) return [whole.userinfo];
  const out = [...text.matchAll(USERINFO)].map((m) => m[2]!);
  for (const item of text.split(',')) {
    const m = LIST_ITEM.exec(item);
    const w = m && wholeUserinfo(m[2]!);
    if (w) out.push(w.userinfo);
  }
  return out;
}

/** Masks URL userinfo and the values of secret query parameters anywhere in `text`. */
export function maskUrlCredentials(text: string): string {
  let out = text;
  if (out.includes('@')) out = maskUserinfo(out);
  if (out.includes('=')) out = out.replace(QUERY_PARAM, (m, sep: string, name: string) => (SECRET_PARAM.test(paramName(name)) ? `${sep}${name}=****` : m));
  return out;
}

function withDecoded(part: string): string[] {
  const out = [part];
  try {
    out.push(decodeURIComponent(part));
  } catch {}
  // As it appears inside JSON output (a '"' or '\\' escaped).
  for (const p of [...out]) out.push(JSON.stringify(p).slice(1, -1));
  return out;
}

/** The secret parts of the URLs in `text` (passwords, user names with a password, token values), to scrub by value. */
export function urlSecretParts(text: string): string[] {
  const out: string[] = [];
  // Userinfo needs an '@' and a parameter an '=': most values (paths, numbers) have neither,
  // and every setting's value passes here on every start.
  if (!text.includes('@') && !text.includes('=')) return out;
  for (const userinfo of userinfos(text)) {
    const colon = userinfo.indexOf(':');
    for (const part of colon >= 0 ? [userinfo, userinfo.slice(colon + 1)] : [userinfo]) out.push(...withDecoded(part));
  }
  for (const m of text.matchAll(QUERY_PARAM)) {
    if (!SECRET_PARAM.test(paramName(m[2]!))) continue;
    out.push(...withDecoded(m[3]!));
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
