/**
 * Output straight to a file descriptor, for the light commands (src/cli/light.ts): status,
 * config and buffer-status print a few lines and exit. process.stdout and process.stderr are
 * streams that Node builds on first use, and building them loads its stream modules: on Node 20
 * that is about 17 M instructions, a fifth of `node -e 0`'s whole start-up (README
 * "Benchmarks"). The bytes and their order are the same: on Linux process.stdout and
 * process.stderr write synchronously to files, pipes and terminals too.
 */
import { fstatSync, readlinkSync, writeSync } from 'node:fs';
import { L2Error, errnoCode, errorMessage } from '../errors.js';

/** Linux's major number of the memory devices (/dev/null, /dev/zero, /dev/full...): never a terminal. */
const MEM_MAJOR = 1;

/**
 * Is `fd` a terminal? A pipe, file or socket, or a memory device (stdio ignored), is answered
 * from fstat; any other character device by node:tty, whose load (it brings node:net) only a
 * terminal pays for.
 */
export function isTerminal(fd: number): boolean {
  let major: number;
  try {
    const st = fstatSync(fd);
    if (!st.isCharacterDevice()) return false;
    major = Math.floor(st.rdev / 256) & 0xfff;
  } catch {
    return false;
  }
  if (major === MEM_MAJOR) return false;
  return process.getBuiltinModule('node:tty').isatty(fd);
}

/** Waits `ms` without the event loop (a full non-blocking pipe: its reader needs time). */
function pause(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/**
 * A stdout or stderr that writes each chunk whole before returning. EAGAIN (a non-blocking pipe
 * or terminal, as a parent's libuv can leave one, that is full) waits for the reader; EBADF (no
 * such stream) drops the text, as Node does for a closed stdio descriptor; EPIPE (the reader
 * went away, `| head -1`) calls `readerGone`. Any other error is thrown to the writer.
 */
export class FdSink {
  readonly isTTY: boolean;

  constructor(
    readonly fd: number,
    private readonly readerGone: () => void,
  ) {
    this.isTTY = isTerminal(fd);
  }

  write(text: string): boolean {
    const data = Buffer.from(text);
    for (let done = 0; done < data.length; ) {
      try {
        done += writeSync(this.fd, data, done, data.length - done);
      } catch (err) {
        const code = errnoCode(err);
        if (code === 'EAGAIN') {
          pause(1);
          continue;
        }
        if (code === 'EBADF') return false;
        if (code === 'EPIPE') {
          this.readerGone();
          return false;
        }
        throw unwritableStream(this.fd, err);
      }
    }
    return true;
  }
}

/**
 * What refused the text written to `fd`, named: `status > /mnt/full/x` must not read as the
 * backups volume being full. Also for process.stdout's errors (src/cli/light.ts installSignals).
 */
export function unwritableStream(fd: number, err: unknown): L2Error {
  const code = errnoCode(err);
  const stream = fd === 1 ? 'standard output' : fd === 2 ? 'standard error' : `descriptor ${fd}`;
  let where = '';
  try {
    where = ` to ${readlinkSync(`/proc/self/fd/${fd}`)}`;
  } catch {}
  const why = code === 'ENOSPC' ? 'no space left there' : code === 'EROFS' ? 'read-only' : errorMessage(err);
  return new L2Error(`cannot write ${stream}${where}: ${why} (${code ?? 'error'}); free space there or send the output elsewhere`);
}
