/**
 * Podman for the container tests: the project's containers.conf (runc, no rlimits, cgroupfs),
 * the local Node.js base from scripts/container-base.sh, and the image built from this tree.
 */
import { execa, execaSync, type Options } from 'execa';
import { join } from 'node:path';
import { ROOT } from '../helpers/run.js';

export const CONTAINERS_CONF = join(ROOT, 'scripts/podman/containers.conf');
export const IMAGE = process.env.L2_TEST_IMAGE ?? 'localhost/l2ops-cron:test';
export const podmanEnv = { ...process.env, CONTAINERS_CONF } as Record<string, string>;

export interface Result {
  exitCode: number;
  stdout: string;
  stderr: string;
  all: string;
}

export async function podman(args: string[], opts: Options = {}): Promise<Result> {
  const res = await execa('podman', args, { env: podmanEnv, reject: false, all: true, timeout: 600_000, ...opts });
  return { exitCode: res.exitCode ?? -1, stdout: String(res.stdout ?? ''), stderr: String(res.stderr ?? ''), all: String(res.all ?? '') };
}

/** A shell line run as an operator would type it (bash, in `cwd`), with podman for docker. */
export async function shell(line: string, cwd: string, env: Record<string, string> = {}): Promise<Result> {
  const res = await execa('bash', ['-c', line], { cwd, env: { ...podmanEnv, ...env }, reject: false, all: true, timeout: 600_000 });
  return { exitCode: res.exitCode ?? -1, stdout: String(res.stdout ?? ''), stderr: String(res.stderr ?? ''), all: String(res.all ?? '') };
}

/**
 * Why podman cannot run containers here, or undefined when it can. Asks podman to run a
 * container for real (`podman info` succeeds on machines where no container can start).
 */
export function podmanUnavailable(): string | undefined {
  try {
    execaSync('podman', ['--version']);
  } catch {
    return 'podman is not installed (apt-get install podman runc uidmap; .ci/run does this)';
  }
  try {
    execaSync('podman', ['info'], { env: podmanEnv, timeout: 60_000 });
  } catch (err) {
    return `podman info failed: ${String((err as Error).message).split('\n')[0]}`;
  }
  return undefined;
}

/** The local base (kept between runs), then the image built from this tree (layer cache). */
export async function buildImage(): Promise<{ base: string; log: string }> {
  const base = await execa(join(ROOT, 'scripts/container-base.sh'), [], { env: podmanEnv, reject: false, all: true, timeout: 1_800_000 });
  if (base.exitCode !== 0) throw new Error(`scripts/container-base.sh failed:\n${base.all}`);
  const name = String(base.stdout).trim().split('\n').pop()!;
  const build = await podman(['build', '--format', 'docker', '--network', 'host', '--build-arg', `NODE_IMAGE=${name}`, '--tag', IMAGE, ROOT], { timeout: 1_800_000 });
  if (build.exitCode !== 0) throw new Error(`podman build failed:\n${build.all.slice(-4000)}`);
  return { base: name, log: build.all };
}

/** Bytes of the layers an image adds over its base. */
export async function sizeOverBase(image: string, base: string): Promise<number> {
  const size = async (name: string) => Number((await podman(['image', 'inspect', '--format', '{{.Size}}', name])).stdout.trim());
  return (await size(image)) - (await size(base));
}

/** Waits until `check` is true, checking every `everyMs`; throws with `what` after `limitMs`. */
export async function until(what: string, check: () => Promise<boolean> | boolean, limitMs = 120_000, everyMs = 250): Promise<void> {
  const deadline = Date.now() + limitMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`gave up waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
