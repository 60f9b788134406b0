/**
 * The dev S3 server's listings (scripts/dev-s3-server.cjs): with and without a delimiter, with
 * prefixes that end inside a name, with MaxKeys pages, and names with special characters, all
 * match S3's semantics (a model computed from the keys; one listing also through the stock AWS
 * CLI). A "/" listing reads only the prefix's folder: it does not touch the objects below its
 * common prefixes (issue 14: a delimiter listing walked all 31k objects).
 */
import { writeFileSync } from 'node:fs';
import { execa } from 'execa';
import { S3Client, PutObjectCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import { startS3, type TestS3 } from './helpers/s3.js';

let s3: TestS3;
let client: S3Client;

const KEYS = [
  'top.txt',
  'a.b',
  'a/b',
  'a/c/d',
  'a/c/e/f',
  'a/c/e/g',
  'a/z',
  'a/',
  'a b/x',
  'a&b+c/%41 d',
  'é/ü',
  'é.txt',
  'snap/2026-01-01T00-00-00Z/models/m.bin',
  'snap/2026-01-01T00-00-00Z/.l2-manifest.json',
  'snap/2026-01-02T00-00-00Z/deep/er/still/x',
  'snap/2026-01-03T00-00-00Z/y',
  'snap/odd name & co/z',
  'snap/\u{1F600}/smile',
  'snap/\uFF5E/wide',
  'snap/file-at-level',
  'snap/file-at-level2',
  'snap2/q',
];

beforeAll(async () => {
  s3 = await startS3('listing-bucket');
  client = new S3Client({ region: 'us-east-1', endpoint: s3.endpoint, forcePathStyle: true, credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } });
  for (const Key of KEYS) await client.send(new PutObjectCommand({ Bucket: s3.bucket, Key, Body: Key }));
});
afterAll(async () => {
  client?.destroy();
  await s3?.stop();
});

const bytes = (a: string, b: string) => Buffer.compare(Buffer.from(a), Buffer.from(b));

/** S3's answer, concatenated over pages: keys and common prefixes under `prefix`, in UTF-8 byte order. */
function model(prefix: string, delimiter?: string): { keys: string[]; prefixes: string[] } {
  const keys: string[] = [];
  const prefixes = new Set<string>();
  for (const k of KEYS.filter((k) => k.startsWith(prefix))) {
    const i = delimiter ? k.indexOf(delimiter, prefix.length) : -1;
    if (i === -1) keys.push(k);
    else prefixes.add(k.slice(0, i + delimiter!.length));
  }
  return { keys: keys.sort(bytes), prefixes: [...prefixes].sort(bytes) };
}

async function list(prefix: string, delimiter: string | undefined, maxKeys?: number): Promise<{ keys: string[]; prefixes: string[]; pages: number }> {
  const keys: string[] = [];
  const prefixes: string[] = [];
  let token: string | undefined;
  let pages = 0;
  do {
    const res = await client.send(new ListObjectsV2Command({ Bucket: s3.bucket, Prefix: prefix || undefined, Delimiter: delimiter, MaxKeys: maxKeys, ContinuationToken: token }));
    pages++;
    const got = (res.Contents ?? []).map((o) => o.Key!);
    if (maxKeys) expect(got.length).toBeLessThanOrEqual(maxKeys);
    keys.push(...got);
    prefixes.push(...(res.CommonPrefixes ?? []).map((p) => p.Prefix!));
    token = res.IsTruncated ? res.NextContinuationToken : undefined;
    expect(pages).toBeLessThan(100);
  } while (token);
  return { keys, prefixes, pages };
}

const PREFIXES = ['', 'a', 'a/', 'a/c/', 'a/c/e', 'é', 'snap/', 'snap/2026-01-0', 'snap/file', 'snap/\u{1F600}/', 'missing/', 'top.txt', 'a/c/e/f/'];

test.each(PREFIXES)('prefix %j: listings with and without "/" match S3 over every page size', async (prefix) => {
  for (const delimiter of ['/', undefined]) {
    const want = model(prefix, delimiter);
    for (const maxKeys of [undefined, 1, 2, 3]) {
      const got = await list(prefix, delimiter, maxKeys);
      expect({ prefix, delimiter, maxKeys, keys: got.keys, prefixes: got.prefixes }).toEqual({ prefix, delimiter, maxKeys, ...want });
    }
  }
});

test('a delimiter other than "/" still lists as S3 does', async () => {
  for (const prefix of ['', 'a', 'snap/2026']) {
    const got = await list(prefix, '-');
    const want = model(prefix, '-');
    expect(new Set(got.keys)).toEqual(new Set(want.keys));
    expect(new Set(got.prefixes)).toEqual(new Set(want.prefixes));
  }
});

test('the stock AWS CLI, an independent client, sees the same "/" listing', async () => {
  const res = await execa('aws', ['s3api', 'list-objects-v2', '--endpoint-url', s3.endpoint, '--bucket', s3.bucket, '--prefix', 'snap/', '--delimiter', '/', '--page-size', '2', '--output', 'json'], {
    env: { AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER', AWS_DEFAULT_REGION: 'us-east-1', AWS_CONFIG_FILE: '/dev/null', AWS_SHARED_CREDENTIALS_FILE: '/dev/null' },
    reject: false,
  });
  expect(res.stderr).toBe('');
  const out = JSON.parse(res.stdout) as { Contents?: { Key: string }[]; CommonPrefixes?: { Prefix: string }[] };
  const want = model('snap/', '/');
  expect((out.Contents ?? []).map((o) => o.Key)).toEqual(want.keys);
  expect((out.CommonPrefixes ?? []).map((p) => p.Prefix)).toEqual(want.prefixes);
});

test('a "/" listing reads no object below its common prefixes (it costs what it returns)', async () => {
  // A damaged metadata file deep below snap/2026-01-02.../: a listing that read every object's
  // metadata (the full walk) fails on it; one that reads only snap/'s own folder does not.
  const deep = s3.objectPath('snap/2026-01-02T00-00-00Z/deep/er/still/x').replace(/\._S3rver_object$/, '._S3rver_metadata.json');
  writeFileSync(deep, '{not json');
  const got = await list('snap/', '/');
  expect(got).toEqual({ ...model('snap/', '/'), pages: 1 });
});
