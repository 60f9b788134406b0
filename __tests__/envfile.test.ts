/**
 * The env file as docker compose reads it, and its redacted copy: examples from compose's
 * env-file rules, then properties over generated files (fast-check).
 */
import fc from 'fast-check';
import { parseEnvFile } from '../src/config/envfile.js';
import { redactEnv } from '../src/backup/envcopy.js';
import { maskUrlCredentials } from '../src/output/mask.js';

const values = (text: string, env: Record<string, string> = {}) => Object.fromEntries(parseEnvFile(text, '/app/.env', env));

test("compose's rules: export, comments, quotes, escapes, multi-line values, interpolation, KEY: value", () => {
  const text = [
    '# a comment',
    'export A=1',
    'B = two words # comment',
    'C=x#not-a-comment',
    "D='$A ${A} \\n literal' # comment",
    'E="tab\\there \\"q\\" \\$A \\\\ $A"',
    'F="line one',
    'line two"',
    "G='it\\'s'",
    'H=${A}-${UNSET:-dflt}-${A:+alt}-${UNSET-x}-$$A',
    'I=${UNSET:-${A:-none}}',
    'J: yaml style',
    'K=${FROM_ENV}',
    '',
  ].join('\n');
  expect(values(text, { FROM_ENV: 'env value' })).toEqual({
    A: '1',
    B: 'two words',
    C: 'x#not-a-comment',
    D: '$A ${A} \\n literal',
    E: 'tab\there "q" $A \\ 1',
    F: 'line one\nline two',
    G: "it's",
    H: '1-dflt-alt-x-$A',
    I: '1',
    J: 'yaml style',
    K: 'env value',
  });
});

test('CRLF line endings everywhere read exactly like LF', () => {
  const lf = 'A=1\nB="multi\nline"\nexport C=\'q\' # c\nD=${A}\n';
  expect(values(lf.replace(/\n/g, '\r\n'))).toEqual(values(lf));
  expect(values(lf).B).toBe('multi\nline');
});

test('a broken line is reported by number and rule, never quoted', () => {
  const secret = 'dGhpcyBpcyBhIHNlY3JldCB3cmFwcGVk+/==';
  const cases: [string, RegExp][] = [
    [`TOKEN=abc\n${secret}\n`, /line 2: expected KEY=VALUE/],
    ['OK=1\nPASS WORD=hunter2-secret\n', /line 2: expected KEY=VALUE; a variable name cannot contain spaces/],
    ['X="unclosed hunter2-secret\n', /line 1: the double quote opened on this line is never closed/],
    ['X="a" hunter2-secret\n', /line 1: unexpected text after the closing quote/],
    ['X=${hunter2-secret\n', /line 1: a \$\{ is never closed/],
    ['X=${NOPE:?hunter2-secret}\n', /line 1: required variable NOPE is not set/],
  ];
  for (const [text, rule] of cases) {
    let message = '';
    try {
      parseEnvFile(text, '/app/.env', {});
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toMatch(rule);
    expect(message).not.toContain('hunter2');
    expect(message).not.toContain(secret.slice(0, 12));
  }
});

test('the redacted copy redacts by name and by value and keeps every key', () => {
  const text = [
    'WALLET_MNEMONIC=abandon ability able about above absent absorb abstract absurd abuse access accident',
    'BROKER_PIN=482913',
    'TELEGRAM_BOT=123456789:AAHfiqksKZ8WmR2zSjiQ7_v4TMAKdiHm9T0',
    'DB_CONN=host=db user=app password=pg-pass-0xdeadbeef sslmode=require',
    'REPORT_DB=host=db user=app password=pg-pass-2nd',
    'DATABASE_URL=postgres://app:pg-pass-url@db:5432/l2',
    'FEED_URL=https://feed.example/v1?symbol=ES&token=feed-token-123',
    'PRIVATE_KEY="-----BEGIN PRIVATE KEY-----',
    'MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7',
    '-----END PRIVATE KEY-----"',
    '#POSTGRES_PASSWORD=old-pass-commented',
    'SHIPPING_MODE=paper',
    'MAPPING=a,b',
    'API_HOST=http://api:3000',
    '',
  ].join('\n');
  const copy = redactEnv(text, []);
  for (const s of ['abandon', '482913', 'AAHfiqks', 'pg-pass', 'feed-token-123', 'MIIEvQ', 'BEGIN PRIVATE', 'old-pass']) expect([s, copy.includes(s)]).toEqual([s, false]);
  for (const k of ['WALLET_MNEMONIC', 'BROKER_PIN', 'TELEGRAM_BOT', 'DB_CONN', 'REPORT_DB', 'DATABASE_URL', 'FEED_URL', 'PRIVATE_KEY']) expect(copy).toContain(`${k}="REDACTED-set-${k}"`);
  expect(copy).toContain('SHIPPING_MODE=paper');
  expect(copy).toContain('MAPPING=a,b');
  expect(copy).toContain('API_HOST=http://api:3000');
  // The copy is itself a valid env file with the same keys.
  expect([...parseEnvFile(copy, 'copy', {}).keys()].sort()).toEqual(['API_HOST', 'BROKER_PIN', 'DATABASE_URL', 'DB_CONN', 'FEED_URL', 'MAPPING', 'PRIVATE_KEY', 'REPORT_DB', 'SHIPPING_MODE', 'TELEGRAM_BOT', 'WALLET_MNEMONIC']);
});

test('the redacted copy with CRLF endings: POSTGRES_PASSWORD and friends redacted, CRLF kept', () => {
  const text = 'POSTGRES_PASSWORD=pg-crlf-secret\r\nJWT_SECRET="jwt-crlf-secret"\r\nMODE=live\r\n';
  const copy = redactEnv(text, []);
  expect(copy).toBe('POSTGRES_PASSWORD="REDACTED-set-POSTGRES_PASSWORD"\r\nJWT_SECRET="REDACTED-set-JWT_SECRET"\r\nMODE=live\r\n');
});

test('a broken or stray line in the copy is replaced by its number, never kept', () => {
  const copy = redactEnv('A=1\nwrapped+secret/part==\nB=2\nlowercasewrappedsecretpart\n', []);
  expect(copy).toBe('A=1\n# (line 2 removed: expected KEY=VALUE)\nB=2\n# (line 4 removed: not a KEY=VALUE line)\n');
});

// --- properties ---

const KEY = fc.stringMatching(/^[A-Z][A-Z0-9_]{0,12}$/);
const PLAIN = fc.stringMatching(/^[a-z0-9 ,./:=@+-]{0,20}$/).map((s) => s.trim());
const ANY_VALUE = fc.string({ unit: fc.constantFrom(...'ab c$"\'\\#=:\n\t{}xyz-_/'.split('')), maxLength: 24 });

/** Writes a value the way an operator might: unquoted when safe, else double or single quotes. */
function render(value: string, style: 'bare' | 'double' | 'single'): string | undefined {
  if (style === 'bare') return /^[a-z0-9,./:=@+-]*$/.test(value) && !value.includes('$') ? value : undefined;
  if (style === 'single') return value.includes("'") || value.includes('\\') ? undefined : `'${value}'`;
  return `"${value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\$/g, '\\$').replace(/\t/g, '\\t')}"`;
}

test('property: any value written with any quoting style reads back exactly; CRLF reads like LF', () => {
  fc.assert(
    fc.property(fc.uniqueArray(fc.tuple(KEY, ANY_VALUE, fc.constantFrom('bare', 'double', 'single') as fc.Arbitrary<'bare' | 'double' | 'single'>, fc.boolean()), { selector: (e) => e[0], maxLength: 8 }), (entries) => {
      const expected: Record<string, string> = {};
      const lines: string[] = [];
      for (const [key, value, style, exported] of entries) {
        const written = render(value, style) ?? render(value, 'double')!;
        lines.push(`${exported ? 'export ' : ''}${key}=${written}`, '# comment');
        expected[key] = value;
      }
      const lf = lines.join('\n') + '\n';
      expect(values(lf)).toEqual(expected);
      expect(values(lf.replace(/\n/g, '\r\n'))).toEqual(values(lf));
    }),
    { numRuns: 300 },
  );
});

const SECRET_KEY = fc.tuple(fc.stringMatching(/^[A-Z]{1,6}$/), fc.constantFrom('PASSWORD', 'SECRET', 'TOKEN', 'API_KEY', 'PIN', 'MNEMONIC', 'PRIVATE_KEY', 'CREDENTIALS', 'AUTH', 'DSN', 'CONNECTION_STRING', 'Passwd', 'authToken')).map(([a, b]) => `${a}_${b}`);
const SECRET = fc.stringMatching(/^[A-Za-z0-9!%*+,./:;?@^_~-]{6,24}$/).map((s) => `Zq${s}`);

test('property: for any secret-looking name or URL credential, the copy never holds the value and keeps the key; CRLF gives the same copy', () => {
  fc.assert(
    fc.property(
      fc.uniqueArray(
        fc.oneof(
          fc.tuple(SECRET_KEY, SECRET, fc.constantFrom('bare', 'double', 'single')).map(([k, s, style]) => ({ key: k, secret: s, line: `${k}=${render(s, style as 'bare') ?? render(s, 'double')!}` })),
          fc.tuple(KEY, SECRET, fc.constantFrom('user', ''), fc.constantFrom('http', 'https', 'postgres', 'redis')).map(([k, s, user, scheme]) => ({ key: `U${k}`, secret: s, line: `U${k}=${scheme}://${user}:${encodeURIComponent(s)}@host.example:5432/db` })),
          fc.tuple(KEY, SECRET, fc.constantFrom('token', 'access_token', 'api_key', 'apikey', 'sig')).map(([k, s, param]) => ({ key: `Q${k}`, secret: s, line: `Q${k}=https://svc.example/v1?x=1&${param}=${encodeURIComponent(s)}` })),
          fc.tuple(KEY, SECRET).map(([k, s]) => ({ key: `C${k}`, secret: s, line: `C${k}="host=db user=app password=${s.replace(/[\\"$]/g, '')} sslmode=require"` })),
          fc.tuple(KEY, PLAIN).map(([k, v]) => ({ key: `N${k}`, secret: undefined, line: `N${k}=${v.includes('://') || v.includes('password') ? 'x' : v}` })),
        ),
        { selector: (e) => e.key, maxLength: 10 },
      ),
      (entries) => {
        const lf = entries.map((e) => e.line).join('\n') + '\n';
        const copy = redactEnv(lf, []);
        for (const e of entries) {
          if (e.secret) {
            const raw = e.line.slice(e.line.indexOf('=') + 1);
            const core = e.secret.replace(/[\\"$]/g, '').slice(2);
            expect(copy.includes(core) ? `${e.key}: ${raw}` : 'absent').toBe('absent');
            expect(copy).toContain(`${e.key}="REDACTED-set-${e.key}"`);
          } else expect(copy).toContain(e.line);
        }
        expect(redactEnv(lf.replace(/\n/g, '\r\n'), [])).toBe(copy.replace(/\n/g, '\r\n'));
        expect(() => parseEnvFile(copy, 'copy', {})).not.toThrow();
      },
    ),
    { numRuns: 300 },
  );
});

test('property: URL userinfo and token parameters never survive the scrubber, the rest of the URL does', () => {
  fc.assert(
    fc.property(SECRET, fc.constantFrom('token', 'access_token', 'api_key', 'X-Amz-Signature', 'password'), fc.webSegment(), (s, param, path) => {
      const enc = encodeURIComponent(s);
      const text = `algo=http://user:${enc}@algo:8000/${path}?a=1&${param}=${enc},ml=https://ml:8001/health?${param}=${enc}`;
      const masked = maskUrlCredentials(text);
      expect(masked.includes(enc.slice(2)) ? masked : 'absent').toBe('absent');
      expect(masked).toContain('algo:8000/');
      expect(masked).toContain('ml=https://ml:8001/health?');
    }),
    { numRuns: 300 },
  );
});
