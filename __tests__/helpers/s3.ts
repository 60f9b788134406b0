/** Starts the test S3 server (s3rver, fixed up: see s3-server.cjs) as a child process on 127.0.0.1. */
import { execa, type ResultPromise } from 'execa';
import { mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, sandbox, type Sandbox } from './run.js';
import { makeTree } from './tree.js';
import { deadPort } from './receiver.js';
import { tracked, scratch } from './cleanup.js';

export interface TestS3 {
  endpoint: string;
  port: number;
  dir: string;
  bucket: string;
  /** object bytes on disk, as s3rver stores them */
  objectPath(key: string): string;
  stop(): Promise<void>;
  start(): Promise<void>;
}

/** `env`: the dev server's own switches (DEV_S3_*: see scripts/dev-s3-server.cjs). */
export async function startS3(bucket = 'l2trading-staging', port?: number, env: Record<string, string> = {}): Promise<TestS3> {
  const dir = mkdtempSync(join(scratch(), 'l2s3-'));
  const p = port ?? (await deadPort());
  let child: ResultPromise | undefined;
  const s3: TestS3 = {
    endpoint: `http://127.0.0.1:${p}`,
    port: p,
    dir,
    bucket,
    objectPath: (key) => join(dir, bucket, `${key}._S3rver_object`),
    start: async () => {
      const c = execa('node', ['--openssl-legacy-provider', join(ROOT, 'scripts/dev-s3-server.cjs'), String(p), dir, bucket], { reject: false, buffer: false, env });
      child = tracked(c);
      await new Promise<void>((resolve, reject) => {
        c.stdout!.on('data', (d: Buffer) => {
          if (d.toString().includes('ready')) resolve();
        });
        c.on('exit', (code) => reject(new Error(`s3 server exited (${code})`)));
      });
    },
    stop: async () => {
      if (!child) return;
      child.kill('SIGTERM');
      await child;
      child = undefined;
    },
  };
  await s3.start();
  return s3;
}

/**
 * The dev S3 server for the whole test file: running before its first test, stopped after its
 * last (afterAll runs even when a test failed; its folder goes with the file's scratch folder).
 * The object is filled in when it starts, so tests use it like the one startS3 returns.
 */
export function withS3Server(bucket?: string, env?: Record<string, string>): TestS3 {
  const s3 = {} as TestS3;
  let started: TestS3 | undefined;
  beforeAll(async () => {
    started = await startS3(bucket, undefined, env);
    Object.assign(s3, started);
  });
  afterAll(async () => {
    await started?.stop();
  });
  return s3;
}

/** A sandbox holding the data tree (makeTree), backing up to a prefix of its own (`tag` and six random characters) in the test bucket. */
export function remoteSandbox(s3: TestS3, tag: string, s3Extra: Record<string, string> = {}, extra: Record<string, string> = {}): Sandbox & { data: string; prefix: string } {
  const sb = sandbox();
  const { data, sources } = makeTree(sb.dir);
  const prefix = `${tag}${Math.random().toString(36).slice(2, 8)}`;
  Object.assign(sb.env, s3Env(s3, { BACKUP_BUCKET: `s3://${s3.bucket}/${prefix}`, ...s3Extra }), { BACKUP_SOURCES: sources, ...extra });
  return { ...sb, data, prefix };
}

export function s3Env(s3: TestS3, extra: Record<string, string> = {}): Record<string, string> {
  return { BACKUP_BUCKET: `s3://${s3.bucket}`, S3_ENDPOINT: s3.endpoint, S3_ACCESS_KEY_ID: 'S3RVER', S3_SECRET_ACCESS_KEY: 'S3RVER', ...extra };
}
