/**
 * secretValues (src/config/index.ts) skips a value equal to its setting's own default: a light
 * command then compiles none of the masking regexes when nothing is configured (issue 14). That
 * is only the same list when no default holds a part urlSecretParts would return.
 */
import { loadConfig, secretValues } from '../src/config/index.js';
import { SETTINGS } from '../src/config/settings.js';
import { urlSecretParts } from '../src/output/mask.js';

test.each(Object.entries(SETTINGS).filter(([, s]) => s.default !== undefined))('the default of %s holds no secret part', (_name, s) => {
  expect(urlSecretParts(s.default!).filter((p) => p.length >= 6)).toEqual([]);
});

test('a value that is not its default is still searched for secrets, in every group', () => {
  const env = { L2_ENV_FILE: '/dev/null', BACKUP_ROOT: '/tmp', BACKUP_SOURCES: 'models=/data/models', S3_ENDPOINT: 'http://user:s3-pass-123@127.0.0.1:9', HEALTH_ENDPOINTS: 'api=http://127.0.0.1:9/h?token=tok-456789' };
  const secrets = secretValues(loadConfig(['alert'], env));
  expect(secrets).toEqual(expect.arrayContaining(['s3-pass-123', 'tok-456789']));
});
