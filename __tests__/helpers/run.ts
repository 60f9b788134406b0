/** Runs the built bin/ programs as child processes with a clean, explicit environment. */
import { scratch } from './cleanup.js';
import { execa, type Options } from 'execa';
import { mkdtempSync, writeFileSync, mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';

export const ROOT = resolve(import.meta.dirname, '../..');

export function bin(name: 'l2alert' | 'l2backup' | 'l2health'): string {
  return join(ROOT, 'bin', `${name}.js`);
}

export interface Sandbox {
  dir: string;
  root: string;
  envFile: string;
  env: Record<string, string>;
}

/** A temp dir with a backups root and an (empty) env file, so /app/.env is never read. */
export function sandbox(env: Record<string, string> = {}, envFileText = ''): Sandbox {
  const dir = mkdtempSync(join(scratch(), 'l2t-'));
  const root = join(dir, 'backups');
  mkdirSync(root);
  const envFile = join(dir, 'env');
  writeFileSync(envFile, envFileText);
  return {
    dir,
    root,
    envFile,
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: dir, BACKUP_ROOT: root, L2_ENV_FILE: envFile, NO_COLOR: '1', ...env },
  };
}

export interface RunResult {
  exitCode: number;
  stdout: string;
  stderr: string;
  all: string;
}

export async function run(program: 'l2alert' | 'l2backup' | 'l2health', args: string[], env: Record<string, string>, opts: Options = {}): Promise<RunResult> {
  const res = await execa('node', [bin(program), ...args], { env, extendEnv: false, reject: false, all: true, timeout: 280_000, ...opts });
  return { exitCode: res.exitCode ?? -1, stdout: String(res.stdout), stderr: String(res.stderr), all: String(res.all) };
}

/** A sandbox whose one source, models, holds a 10 kB weights.bin. */
export function modelsSandbox(extra: Record<string, string> = {}): Sandbox & { models: string } {
  const box = sandbox(extra);
  const models = join(box.dir, 'models');
  mkdirSync(models);
  writeFileSync(join(models, 'weights.bin'), Buffer.alloc(10_000, 7));
  box.env.BACKUP_SOURCES = `models=${models}`;
  return { ...box, models };
}
