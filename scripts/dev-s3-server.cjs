/*
 * Test S3 server: s3rver, started in its own process with --openssl-legacy-provider (its
 * truncated ListObjectsV2 pages fail with HTTP 500 under OpenSSL 3 otherwise), with two fixes
 * so tests exercise the product and not the server's gaps:
 * - listing with Delimiter: s3rver prunes the walk below a common prefix and so misses
 *   "folders" that contain only deeper keys; here such listings are computed from a full walk;
 * - signatures: s3rver checks only that the access key exists, never a SigV4 signature; here
 *   every request's SigV4 signature is verified against the account's secret;
 * - CopyObject: s3rver reads x-amz-copy-source with decodeURI, so keys with '&', '+', ... in
 *   them (encoded as S3 requires) are not found; the header is normalised here;
 * - AbortMultipartUpload (DELETE ?uploadId=...): s3rver does not implement it (405); here it
 *   removes the upload's parts, as S3 does;
 * - key length: S3 refuses to store a key longer than 1024 bytes (400 KeyTooLongError); s3rver
 *   does not check, so it is checked here.
 * Used by the tests and by `npm run demo`.
 * Usage: node --openssl-legacy-provider scripts/dev-s3-server.cjs <port> <dir> <bucket>; prints "ready <port>".
 */
'use strict';
const crypto = require('node:crypto');
const { URLSearchParams } = require('node:url');
const fs = require('node:fs');
const path = require('node:path');
const S3rver = require('s3rver');
const FilesystemStore = require('s3rver/lib/stores/filesystem');

const [port, dir, bucket] = process.argv.slice(2);
const ACCESS_KEY = 'S3RVER';
const SECRET = 'S3RVER';

const original = FilesystemStore.prototype.listObjects;
FilesystemStore.prototype.listObjects = async function listObjects(b, options) {
  if (!options.delimiter) return original.call(this, b, options);
  const { delimiter, prefix = '', startAfter = '', maxKeys = Infinity } = options;
  const all = await original.call(this, b, { prefix, startAfter, maxKeys: Infinity });
  const objects = [];
  const prefixes = new Set();
  let isTruncated = false;
  for (const o of all.objects) {
    const rest = o.key.slice(prefix.length);
    const i = rest.indexOf(delimiter);
    if (i !== -1) {
      prefixes.add(o.key.slice(0, prefix.length + i + delimiter.length));
      continue;
    }
    if (objects.length + prefixes.size >= maxKeys) {
      isTruncated = true;
      break;
    }
    objects.push(o);
  }
  return { objects, commonPrefixes: [...prefixes].sort(), isTruncated };
};

const enc = (s) => encodeURIComponent(s).replace(/[!'()*]/g, (c) => '%' + c.charCodeAt(0).toString(16).toUpperCase());
const hmac = (key, data) => crypto.createHmac('sha256', key).update(data).digest();
const sha = (data) => crypto.createHash('sha256').update(data).digest('hex');

function verifySigV4(ctx) {
  const auth = ctx.get('authorization');
  if (!auth) return null;
  const m = /^AWS4-HMAC-SHA256 Credential=([^/]+)\/(\d{8})\/([^/]+)\/([^/]+)\/aws4_request, ?SignedHeaders=([^,]+), ?Signature=([0-9a-f]+)$/.exec(auth);
  if (!m) return ['InvalidArgument', 'malformed Authorization header'];
  const [, key, date, region, service, signed, signature] = m;
  if (key !== ACCESS_KEY) return ['InvalidAccessKeyId', 'The AWS Access Key Id you provided does not exist in our records.'];
  const [rawPath, rawQuery = ''] = ctx.req.url.split('?');
  const query = rawQuery
    .split('&')
    .filter(Boolean)
    .map((kv) => {
      const [k, v = ''] = kv.split('=');
      return [enc(decodeURIComponent(k.replace(/\+/g, ' '))), enc(decodeURIComponent(v.replace(/\+/g, ' ')))];
    })
    .sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] < b[1] ? -1 : 1))
    .map(([k, v]) => `${k}=${v}`)
    .join('&');
  const names = signed.split(';');
  const headers = names.map((n) => `${n}:${String(ctx.req.headers[n] ?? '').trim().replace(/\s+/g, ' ')}\n`).join('');
  const canonical = [ctx.method, rawPath, query, headers, signed, ctx.get('x-amz-content-sha256') || 'UNSIGNED-PAYLOAD'].join('\n');
  const amzDate = ctx.get('x-amz-date');
  const scope = `${date}/${region}/${service}/aws4_request`;
  const toSign = ['AWS4-HMAC-SHA256', amzDate, scope, sha(canonical)].join('\n');
  const kSigning = hmac(hmac(hmac(hmac(`AWS4${SECRET}`, date), region), service), 'aws4_request');
  const expected = crypto.createHmac('sha256', kSigning).update(toSign).digest('hex');
  if (expected !== signature) return ['SignatureDoesNotMatch', 'The request signature we calculated does not match the signature you provided.'];
  return null;
}

const server = new S3rver({ port: Number(port), address: '127.0.0.1', directory: dir, silent: true, configureBuckets: [{ name: bucket }] });
server.middleware.unshift(async (ctx, next) => {
  const bad = verifySigV4(ctx);
  if (bad) {
    ctx.status = 403;
    ctx.type = 'application/xml';
    ctx.body = `<?xml version="1.0" encoding="UTF-8"?><Error><Code>${bad[0]}</Code><Message>${bad[1]}</Message></Error>`;
    return;
  }
  const uploadId = ctx.method === 'DELETE' ? new URLSearchParams(ctx.req.url.split('?')[1] ?? '').get('uploadId') : null;
  if (uploadId) {
    const uploadDir = path.join(dir, bucket, '._S3rver_uploads', uploadId);
    if (!/^[0-9a-f]+$/.test(uploadId) || !fs.existsSync(uploadDir)) {
      ctx.status = 404;
      ctx.type = 'application/xml';
      ctx.body = '<?xml version="1.0" encoding="UTF-8"?><Error><Code>NoSuchUpload</Code><Message>The specified upload does not exist.</Message></Error>';
      return;
    }
    fs.rmSync(uploadDir, { recursive: true, force: true });
    ctx.status = 204;
    return;
  }
  if (ctx.method === 'PUT' || ctx.method === 'POST') {
    const path = ctx.req.url.split('?')[0];
    const key = decodeURIComponent(path.slice(path.indexOf('/', 1) + 1));
    if (path.indexOf('/', 1) !== -1 && Buffer.byteLength(key) > 1024) {
      ctx.status = 400;
      ctx.type = 'application/xml';
      ctx.body = '<?xml version="1.0" encoding="UTF-8"?><Error><Code>KeyTooLongError</Code><Message>Your key is too long</Message></Error>';
      return;
    }
  }
  const copySource = ctx.req.headers['x-amz-copy-source'];
  if (typeof copySource === 'string') ctx.req.headers['x-amz-copy-source'] = encodeURI(decodeURIComponent(copySource));
  await next();
});
server.run().then((addr) => {
  process.stdout.write(`ready ${addr.port}\n`);
});
process.on('SIGTERM', () => process.exit(0));
