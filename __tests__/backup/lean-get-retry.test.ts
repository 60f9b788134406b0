/**
 * The lean download GETs (src/backup/s3-get.ts) retry what the SDK's standard strategy
 * retries, and nothing else. The faults here (a DNS lookup that fails for a moment, a
 * LimitExceededException) are ones a local S3 server cannot be made to show, so the client's
 * request handler is replaced by one that answers from a script; signing stays real.
 */
import { Readable } from 'node:stream';
import { S3Client } from '@aws-sdk/client-s3';
import { LeanGet } from '../../src/backup/s3-get.js';

type Step = { fail: Error & { code?: string } } | { status: number; body: string };

function client(steps: Step[]): { s3: S3Client; calls: () => number } {
  let calls = 0;
  const requestHandler = {
    handle: async () => {
      const step = steps[Math.min(calls++, steps.length - 1)]!;
      if ('fail' in step) throw step.fail;
      return { response: { statusCode: step.status, headers: { 'content-length': String(step.body.length) }, body: Readable.from([Buffer.from(step.body)]) } };
    },
  };
  const s3 = new S3Client({ region: 'us-east-1', endpoint: 'http://127.0.0.1:9', forcePathStyle: true, credentials: { accessKeyId: 'K', secretAccessKey: 'S' }, requestHandler });
  return { s3, calls: () => calls };
}

const errorXml = (code: string) => `<?xml version="1.0"?><Error><Code>${code}</Code><Message>scripted</Message></Error>`;
const withCode = (code: string) => Object.assign(new Error(`getaddrinfo ${code} s3.example`), { code });

async function get(steps: Step[]): Promise<{ body?: string; error?: string; calls: number }> {
  const { s3, calls } = client(steps);
  const lean = await LeanGet.make(s3, 'bucket', 'http://127.0.0.1:9', 3);
  if (!lean) throw new Error('expected the lean GET for a plain SigV4 endpoint');
  try {
    const answer = await lean.get('some/key', undefined, new AbortController().signal);
    const chunks: Buffer[] = [];
    for await (const c of answer.Body) chunks.push(c as Buffer);
    return { body: Buffer.concat(chunks).toString(), calls: calls() };
  } catch (err) {
    return { error: (err as Error).name, calls: calls() };
  } finally {
    s3.destroy();
  }
}

const ok: Step = { status: 200, body: 'payload' };

test.each([
  ['a DNS lookup that fails for a moment (EAI_AGAIN)', { fail: withCode('EAI_AGAIN') }],
  ['a refused connection (ECONNREFUSED)', { fail: withCode('ECONNREFUSED') }],
  ['503 SlowDown', { status: 503, body: errorXml('SlowDown') }],
  ['500 InternalError', { status: 500, body: errorXml('InternalError') }],
  ['400 LimitExceededException (throttling)', { status: 400, body: errorXml('LimitExceededException') }],
  ['429 with no XML', { status: 429, body: 'busy' }],
] as [string, Step][])('retried: %s', async (_what, fault) => {
  const r = await get([fault, ok]);
  expect(r).toEqual({ body: 'payload', calls: 2 });
}, 30_000);

test.each([
  ['404 NoSuchKey', { status: 404, body: errorXml('NoSuchKey') }, 'NoSuchKey'],
  ['403 AccessDenied', { status: 403, body: errorXml('AccessDenied') }, 'AccessDenied'],
  ['416 InvalidRange', { status: 416, body: '' }, 'InvalidRange'],
] as [string, Step, string][])('not retried: %s', async (_what, fault, name) => {
  const r = await get([fault, ok]);
  expect(r).toEqual({ error: name, calls: 1 });
});

test('a fault that never clears stops after S3_ATTEMPTS (3) attempts with the last error', async () => {
  const r = await get([{ status: 503, body: errorXml('SlowDown') }]);
  expect(r).toEqual({ error: 'SlowDown', calls: 3 });
}, 30_000);
