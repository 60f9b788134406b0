/*
 * Test S3 server: s3rver, started in its own process with --openssl-legacy-provider (its
 * truncated ListObjectsV2 pages fail with HTTP 500 under OpenSSL 3 otherwise), with two fixes
 * so tests exercise the product and not the server's gaps:
 * - listing with Delimiter: s3rver prunes the walk below a common prefix and so misses
 *   "folders" that contain only deeper keys; here listings walk folders in key order and a
 *   "/" listing stops at one object below each sub-folder (see listInKeyOrder);
 * - signatures: s3rver checks only that the access key exists, never a SigV4 signature; here
 *   every request's SigV4 signature is verified against the account's secret;
 * - CopyObject: s3rver reads x-amz-copy-source with decodeURI, so keys with '&', '+', ... in
 *   them (encoded as S3 requires) are not found; the header is normalised here;
 * - AbortMultipartUpload (DELETE ?uploadId=...): s3rver does not implement it (405); here it
 *   removes the upload's parts, as S3 does;
 * - key length: S3 refuses to store a key longer than 1024 bytes (400 KeyTooLongError); s3rver
 *   does not check, so it is checked here.
 * Added for issue 12 (each in its own block below):
 * - UploadPartCopy (PUT ?partNumber&uploadId with x-amz-copy-source[-range]): s3rver stores an
 *   empty part; here the part is the source object's bytes (or the range of them);
 *   DEV_S3_NO_UPLOAD_PART_COPY=1 answers 501 NotImplemented, as some S3-compatible servers do;
 * - GetBucketEncryption: DEV_S3_BUCKET_ENCRYPTION=AES256|aws:kms[:keyid] answers it; unset, the
 *   answer is ServerSideEncryptionConfigurationNotFoundError (no default encryption);
 * - object lock: x-amz-object-lock-mode / -retain-until-date and x-amz-server-side-encryption
 *   are stored per object (PutObject, CopyObject, multipart uploads), returned by HEAD/GET and
 *   GET ?retention; DeleteObject(s) of an object before its retain-until date is refused
 *   (AccessDenied), as AWS refuses to delete a locked version;
 * - keys: DEV_S3_EXTRA_KEYS=KEY:SECRET,... adds access keys; DEV_S3_DELETE_KEYS=KEY,... (when
 *   set) lists the only keys allowed to delete objects (the others get AccessDenied), so a
 *   least-privilege nightly key can be shown for real.
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
const SECRETS = new Map([[ACCESS_KEY, SECRET]]);

// ---- listings: read only the folders the listing returns (issue 14) ----------------------
// s3rver keeps key "a/b/c" as the file a/b/c._S3rver_object, so the store's folders are the
// key's "/"-separated parts. Its own listing walks folders in readdir order, which is not key
// order ("a.b" sorts before "a/x" but the folder "a" comes first), so a paged listing could
// skip keys; with a delimiter it missed folders, and the fix that walked every object (reading
// each one's metadata) took 18-27 s at 31k objects. Here a listing walks folders in S3's key
// order (UTF-8 bytes), starting at the folder its prefix ends in, skipping what lies before
// StartAfter and stopping once the page is full. A "/"-delimited listing does not descend: each
// sub-folder that holds an object is one common prefix. Either costs what it returns. Other
// delimiters keep the full walk below. s3rver's continuation token names the last object
// returned, so a truncated page holds at least one object and ends on one.
const S3Object = require('s3rver/lib/models/object');
const OBJECT_SUFFIX = '._S3rver_object';
const byteOrder = (a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b));

/** readdir's type, or lstat's where the file system does not say (DT_UNKNOWN). */
const isFolder = (dir, d) => d.isDirectory() || (!d.isFile() && !d.isSymbolicLink() && fs.lstatSync(path.join(dir, d.name)).isDirectory());

/**
 * A folder's objects (`{ key }`) and sub-folders (`{ folder, key: "<prefix>/" }`) whose names
 * start with `namePrefix`, in key order: a sub-folder sorts as its name plus "/", since every
 * key below it starts so. What sorts wholly at or before `startAfter` is left out.
 */
function folderEntries(dir, keyPrefix, namePrefix, startAfter) {
  let names = [];
  try {
    names = fs.readdirSync(dir, { withFileTypes: true });
  } catch (err) {
    if (err.code !== 'ENOENT' && err.code !== 'ENOTDIR') throw err;
  }
  const out = [];
  for (const d of names) {
    if (!d.name.startsWith(namePrefix)) continue;
    if (isFolder(dir, d)) {
      const key = `${keyPrefix}${d.name}/`;
      if (byteOrder(key, startAfter) > 0 || startAfter.startsWith(key)) out.push({ key, folder: path.join(dir, d.name) });
    } else if (d.name.endsWith(OBJECT_SUFFIX)) {
      const key = keyPrefix + d.name.slice(0, -OBJECT_SUFFIX.length);
      if (key.startsWith(keyPrefix + namePrefix) && byteOrder(key, startAfter) > 0) out.push({ key });
    }
  }
  return out.sort((a, b) => byteOrder(a.key, b.key));
}

/** Every object key below a folder (`{ folder, key }`), after `startAfter`, in key order. */
function* keysBelow(entry, startAfter) {
  for (const e of folderEntries(entry.folder, entry.key, '', startAfter)) {
    if (e.folder) yield* keysBelow(e, startAfter);
    else yield e.key;
  }
}

async function listInKeyOrder(store, bucket, { delimiter, prefix = '', startAfter = '', maxKeys = Infinity }) {
  const folderKey = prefix.slice(0, prefix.lastIndexOf('/') + 1);
  const top = folderEntries(path.join(store.getBucketPath(bucket), folderKey), folderKey, prefix.slice(folderKey.length), startAfter);
  const keys = [];
  const commonPrefixes = [];
  let isTruncated = false;
  let prefixesAtLastKey = 0;
  const full = () => {
    if (keys.length === 0 || keys.length + commonPrefixes.length < maxKeys) return false;
    commonPrefixes.length = prefixesAtLastKey; // the next page (after the last key) lists them
    return (isTruncated = true);
  };
  outer: for (const e of top) {
    if (e.folder && delimiter) {
      if (keysBelow(e, startAfter).next().done) continue; // holds no object (after startAfter)
      if (full()) break;
      commonPrefixes.push(e.key);
      continue;
    }
    for (const key of e.folder ? keysBelow(e, startAfter) : [e.key]) {
      if (full()) break outer;
      keys.push(key);
      prefixesAtLastKey = commonPrefixes.length;
    }
  }
  const metadata = await Promise.all(keys.map((k) => store.getMetadata(bucket, k).catch((err) => (err.code === 'ENOENT' ? undefined : Promise.reject(err)))));
  const objects = keys.flatMap((k, i) => (metadata[i] ? [new S3Object(bucket, k, null, metadata[i])] : []));
  return { objects, commonPrefixes, isTruncated };
}

const original = FilesystemStore.prototype.listObjects;
FilesystemStore.prototype.listObjects = async function listObjects(b, options) {
  const fullWalk = process.env.DEV_S3_FULL_WALK === '1'; // the old way, for comparisons
  if (!fullWalk && (!options.delimiter || options.delimiter === '/')) return listInKeyOrder(this, b, options);
  if (!options.delimiter) return original.call(this, b, options);
  // Any other delimiter: the full walk.
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
  if (!SECRETS.has(key)) return ['InvalidAccessKeyId', 'The AWS Access Key Id you provided does not exist in our records.'];
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
  const kSigning = hmac(hmac(hmac(hmac(`AWS4${SECRETS.get(key)}`, date), region), service), 'aws4_request');
  const expected = crypto.createHmac('sha256', kSigning).update(toSign).digest('hex');
  if (expected !== signature) return ['SignatureDoesNotMatch', 'The request signature we calculated does not match the signature you provided.'];
  ctx.state.accessKey = key;
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
// ---- issue 12: keys, UploadPartCopy, bucket encryption, per-object SSE and object lock ----
const xmlError = (ctx, status, code, message) => {
  ctx.status = status;
  ctx.type = 'application/xml';
  ctx.body = `<?xml version="1.0" encoding="UTF-8"?><Error><Code>${code}</Code><Message>${message}</Message></Error>`;
};
const xmlEscape = (s) => s.replace(/[<>&'"]/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', "'": '&apos;', '"': '&quot;' })[c]);
const xmlUnescape = (s) => s.replace(/&(lt|gt|amp|apos|quot|#(\d+)|#x([0-9a-fA-F]+));/g, (_, n, d, h) => (d ? String.fromCodePoint(Number(d)) : h ? String.fromCodePoint(parseInt(h, 16)) : { lt: '<', gt: '>', amp: '&', apos: "'", quot: '"' }[n]));

const { DUMMY_ACCOUNT } = require('s3rver/lib/models/account');
for (const pair of (process.env.DEV_S3_EXTRA_KEYS ?? '').split(',').filter(Boolean)) {
  const [k, ...rest] = pair.split(':');
  SECRETS.set(k, rest.join(':'));
  DUMMY_ACCOUNT.createKeyPair(k, rest.join(':'));
}
const deleteKeys = process.env.DEV_S3_DELETE_KEYS ? new Set(process.env.DEV_S3_DELETE_KEYS.split(',').filter(Boolean)) : undefined;
// (a12) DEV_S3_RETENTION_KEYS=KEY,... (when set): the only keys shown an object's lock (HEAD/GET
// headers, GET ?retention), as AWS shows it only to a key with s3:GetObjectRetention.
const retentionKeys = process.env.DEV_S3_RETENTION_KEYS ? new Set(process.env.DEV_S3_RETENTION_KEYS.split(',').filter(Boolean)) : undefined;
const seesRetention = (ctx) => !retentionKeys || retentionKeys.has(ctx.state.accessKey);
const LOCK_HEADERS = new Set(['x-amz-object-lock-mode', 'x-amz-object-lock-retain-until-date']);

/** Per-object protection (SSE, lock), kept beside the bucket; multipart uploads by id until completed. */
const protectionFile = path.join(dir, '._l2dev_protection.json');
const protection = fs.existsSync(protectionFile) ? JSON.parse(fs.readFileSync(protectionFile, 'utf8')) : { objects: {}, uploads: {} };
const saveProtection = () => {
  fs.writeFileSync(`${protectionFile}.tmp`, JSON.stringify(protection));
  fs.renameSync(`${protectionFile}.tmp`, protectionFile);
};
const requested = (ctx) => {
  const p = {};
  for (const h of ['x-amz-server-side-encryption', 'x-amz-server-side-encryption-aws-kms-key-id', 'x-amz-object-lock-mode', 'x-amz-object-lock-retain-until-date']) {
    const v = ctx.get(h);
    if (v) p[h] = v;
  }
  return p;
};
const lockedUntil = (key) => {
  const until = protection.objects[key]?.['x-amz-object-lock-retain-until-date'];
  // Only an object that is there is held (one removed behind the server's back is not).
  return until && Date.parse(until) > Date.now() && fs.existsSync(server.store.getResourcePath(bucket, key, 'object')) ? until : undefined;
};
/** bucket and key of a path-style request ('/bucket/key...'), or undefined for a bucket request */
const target = (ctx) => {
  const p = ctx.req.url.split('?')[0];
  const i = p.indexOf('/', 1);
  if (i === -1 || i === p.length - 1) return { bucket: decodeURIComponent(p.slice(1).replace(/\/$/, '')), key: undefined };
  return { bucket: decodeURIComponent(p.slice(1, i)), key: decodeURIComponent(p.slice(i + 1)) };
};
const copySourceOf = (ctx) => {
  let src = decodeURIComponent(ctx.req.headers['x-amz-copy-source'].split('?')[0]);
  if (src.startsWith('/')) src = src.slice(1);
  const i = src.indexOf('/');
  return { bucket: src.slice(0, i), key: src.slice(i + 1) };
};

async function uploadPartCopy(ctx) {
  if (process.env.DEV_S3_NO_UPLOAD_PART_COPY === '1') return xmlError(ctx, 501, 'NotImplemented', 'A header you provided implies functionality that is not implemented');
  const { uploadId, partNumber } = ctx.query;
  const uploadDir = path.join(dir, bucket, '._S3rver_uploads', String(uploadId));
  if (!/^[0-9a-f]+$/.test(String(uploadId)) || !fs.existsSync(uploadDir)) return xmlError(ctx, 404, 'NoSuchUpload', 'The specified upload does not exist.');
  const src = copySourceOf(ctx);
  const srcPath = server.store.getResourcePath(src.bucket, src.key, 'object');
  if (!fs.existsSync(srcPath)) return xmlError(ctx, 404, 'NoSuchKey', 'The specified key does not exist.');
  const size = fs.statSync(srcPath).size;
  let start = 0;
  let end = size - 1;
  const range = ctx.get('x-amz-copy-source-range');
  if (range) {
    const m = /^bytes=(\d+)-(\d+)$/.exec(range);
    if (!m || Number(m[1]) > Number(m[2]) || Number(m[2]) >= size) return xmlError(ctx, 400, 'InvalidArgument', 'The x-amz-copy-source-range value must be of the form bytes=first-last where first and last are the zero-based offsets of the first and last bytes to copy');
    start = Number(m[1]);
    end = Number(m[2]);
  }
  const partPath = path.join(uploadDir, String(Number(partNumber)));
  const md5 = crypto.createHash('md5');
  await new Promise((resolve, reject) => {
    const out = fs.createWriteStream(partPath);
    fs.createReadStream(srcPath, { start, end })
      .on('data', (c) => md5.update(c))
      .on('error', reject)
      .pipe(out)
      .on('finish', resolve)
      .on('error', reject);
  });
  const etag = md5.digest('hex');
  fs.writeFileSync(`${partPath}.md5`, etag);
  ctx.status = 200;
  ctx.type = 'application/xml';
  ctx.body = `<?xml version="1.0" encoding="UTF-8"?><CopyPartResult><LastModified>${new Date().toISOString()}</LastModified><ETag>"${etag}"</ETag></CopyPartResult>`;
}

async function deleteObjects(ctx, t) {
  const body = await new Promise((resolve, reject) => {
    const chunks = [];
    ctx.req.on('data', (c) => chunks.push(c));
    ctx.req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    ctx.req.on('error', reject);
  });
  const keys = [...body.matchAll(/<Key>([\s\S]*?)<\/Key>/g)].map((m) => xmlUnescape(m[1]));
  const quiet = /<Quiet>true<\/Quiet>/.test(body);
  const deleted = [];
  const errors = [];
  for (const key of keys) {
    const denied = deleteKeys && !deleteKeys.has(ctx.state.accessKey) ? 'Access Denied' : lockedUntil(key) ? 'Access Denied because object protected by object lock.' : undefined;
    if (denied) {
      errors.push(`<Error><Key>${xmlEscape(key)}</Key><Code>AccessDenied</Code><Message>${denied}</Message></Error>`);
      continue;
    }
    if (await server.store.existsObject(t.bucket, key)) await server.store.deleteObject(t.bucket, key);
    if (protection.objects[key]) {
      delete protection.objects[key];
      saveProtection();
    }
    if (!quiet) deleted.push(`<Deleted><Key>${xmlEscape(key)}</Key></Deleted>`);
  }
  ctx.status = 200;
  ctx.type = 'application/xml';
  ctx.body = `<?xml version="1.0" encoding="UTF-8"?><DeleteResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">${deleted.join('')}${errors.join('')}</DeleteResult>`;
}

server.middleware.splice(1, 0, async (ctx, next) => {
  const t = target(ctx);
  const q = ctx.query;
  if (!t.key) {
    if (ctx.method === 'GET' && 'encryption' in q) {
      const conf = process.env.DEV_S3_BUCKET_ENCRYPTION;
      if (!conf || conf === 'none') return xmlError(ctx, 404, 'ServerSideEncryptionConfigurationNotFoundError', 'The server side encryption configuration was not found');
      const [alg, ...kms] = conf.split(':');
      ctx.status = 200;
      ctx.type = 'application/xml';
      ctx.body = `<?xml version="1.0" encoding="UTF-8"?><ServerSideEncryptionConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Rule><ApplyServerSideEncryptionByDefault><SSEAlgorithm>${alg}</SSEAlgorithm>${kms.length ? `<KMSMasterKeyID>${xmlEscape(kms.join(':'))}</KMSMasterKeyID>` : ''}</ApplyServerSideEncryptionByDefault></Rule></ServerSideEncryptionConfiguration>`;
      return;
    }
    if (ctx.method === 'POST' && 'delete' in q) return deleteObjects(ctx, t);
    return next();
  }
  if (ctx.method === 'PUT' && 'uploadId' in q && 'partNumber' in q && ctx.req.headers['x-amz-copy-source']) return uploadPartCopy(ctx);
  if (ctx.method === 'DELETE' && !('uploadId' in q)) {
    if (deleteKeys && !deleteKeys.has(ctx.state.accessKey)) return xmlError(ctx, 403, 'AccessDenied', 'Access Denied');
    if (lockedUntil(t.key)) return xmlError(ctx, 403, 'AccessDenied', 'Access Denied because object protected by object lock.');
    await next();
    if (ctx.status < 300 && protection.objects[t.key]) {
      delete protection.objects[t.key];
      saveProtection();
    }
    return;
  }
  if (ctx.method === 'GET' && 'retention' in q) {
    if (!seesRetention(ctx)) return xmlError(ctx, 403, 'AccessDenied', 'Access Denied');
    const p = protection.objects[t.key];
    if (!p?.['x-amz-object-lock-mode']) return xmlError(ctx, 404, 'NoSuchObjectLockConfiguration', 'The specified object does not have a ObjectLock configuration');
    ctx.status = 200;
    ctx.type = 'application/xml';
    ctx.body = `<?xml version="1.0" encoding="UTF-8"?><Retention xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Mode>${p['x-amz-object-lock-mode']}</Mode><RetainUntilDate>${p['x-amz-object-lock-retain-until-date']}</RetainUntilDate></Retention>`;
    return;
  }
  const wanted = requested(ctx);
  await next();
  if (ctx.status >= 300) return;
  if ((ctx.method === 'GET' || ctx.method === 'HEAD') && protection.objects[t.key]) {
    for (const [h, v] of Object.entries(protection.objects[t.key])) if (seesRetention(ctx) || !LOCK_HEADERS.has(h)) ctx.set(h, v);
  } else if (ctx.method === 'PUT' && !('uploadId' in q)) {
    protection.objects[t.key] = wanted; // PutObject or CopyObject: each write asks again
    saveProtection();
  } else if (ctx.method === 'POST' && 'uploads' in q) {
    const id = /<UploadId>([0-9a-f]+)<\/UploadId>/.exec(String(ctx.body))?.[1];
    if (id) protection.uploads[id] = wanted;
    saveProtection();
  } else if (ctx.method === 'POST' && 'uploadId' in q) {
    protection.objects[t.key] = protection.uploads[q.uploadId] ?? {};
    delete protection.uploads[q.uploadId];
    saveProtection();
  }
});
// ---- end of issue 12 block ----

// (a16x) Content-MD5 on UploadPart: S3 answers 400 BadDigest when the part's bytes do not have
// the MD5 the request names (and keeps no part); s3rver never checks it, so a part damaged on
// the way would be stored here as sent.
server.middleware.splice(1, 0, async (ctx, next) => {
  const q = ctx.query;
  const md5 = ctx.get('content-md5');
  if (!(ctx.method === 'PUT' && 'uploadId' in q && 'partNumber' in q && md5 && !ctx.req.headers['x-amz-copy-source'])) return next();
  await next();
  if (ctx.status >= 300) return;
  const got = String(ctx.response.get('ETag')).replace(/"/g, '');
  if (Buffer.from(md5, 'base64').toString('hex') === got) return;
  const partPath = path.join(dir, bucket, '._S3rver_uploads', String(q.uploadId), String(Number(q.partNumber)));
  fs.rmSync(partPath, { force: true });
  fs.rmSync(`${partPath}.md5`, { force: true });
  ctx.remove('ETag');
  xmlError(ctx, 400, 'BadDigest', 'The Content-MD5 you specified did not match what we received.');
});
// ---- end of a16x block ----

server.run().then((addr) => {
  process.stdout.write(`ready ${addr.port}\n`);
});
process.on('SIGTERM', () => process.exit(0));
