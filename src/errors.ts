/**
 * Exit codes shared by the three programs (documented in --help and the README).
 * Errors carry their exit code so the CLI layer can turn any of them into one line and a code.
 */
export const EXIT = {
  OK: 0,
  FAILED: 1,
  USAGE: 2,
  PARTIAL: 3,
  LOCKED: 75,
} as const;

export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

export const EXIT_CODES_HELP = `Exit codes:
  0   ok
  1   the job failed (check down, upload failed, verification mismatch)
  2   bad usage or configuration
  3   finished with some parts missing (partial)
  75  another run holds the lock`;

/**
 * Control characters (C0, DEL, C1, line and paragraph separators) written as visible escapes:
 * a culprit quoted in a message (an unknown key, a bad value) can neither break the line nor
 * forge a log line nor reach the terminal as an escape sequence.
 */
export function escapeControl(text: string): string {
  // eslint-disable-next-line no-control-regex -- matching control characters is the point
  return text.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g, (ch) => {
    const named: Record<string, string> = { '\n': '\\n', '\r': '\\r', '\t': '\\t' };
    const code = ch.charCodeAt(0);
    return named[ch] ?? (code <= 0xff ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`);
  });
}

/** An error meant for the operator: printed as one line (control characters escaped), no stack trace. */
export class L2Error extends Error {
  constructor(
    message: string,
    readonly exitCode: ExitCode = EXIT.FAILED,
  ) {
    super(escapeControl(message));
    this.name = new.target.name;
  }
}

/** Bad usage: unknown id, bad flag value, a path outside the target... (exit 2). */
export class UsageError extends L2Error {
  constructor(message: string) {
    super(message, EXIT.USAGE);
  }
}

/** Bad configuration value (exit 2). */
export class ConfigError extends L2Error {
  constructor(message: string) {
    super(message, EXIT.USAGE);
  }
}

/** Another process holds the run lock (exit 75). */
export class LockedError extends L2Error {
  constructor(message: string) {
    super(message, EXIT.LOCKED);
  }
}

export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}

/** Node system errors carry a code such as ENOENT; this reads it without casts at every call site. */
export function errnoCode(err: unknown): string | undefined {
  if (err && typeof err === 'object' && 'code' in err && typeof (err as { code: unknown }).code === 'string') {
    return (err as { code: string }).code;
  }
  return undefined;
}

/** Errno codes that mean "this volume cannot take writes now": full, over quota or read-only. */
export const UNWRITABLE_CODES: Record<string, string> = {
  ENOSPC: 'is full',
  EDQUOT: 'is over its quota',
  EROFS: 'is read-only',
};

/**
 * What to do about running out of file descriptors (EMFILE: this process, ENFILE: the system),
 * or '' for any other error. A restore keeps a few hundred files and their folders open at once;
 * a container's low nofile ulimit is the usual cause.
 */
export function descriptorHint(err: unknown): string {
  const code = errnoCode(err);
  if (code !== 'EMFILE' && code !== 'ENFILE') return '';
  return `; out of open files (${code}): raise the open-file limit (ulimit -n 4096, or the container's nofile ulimit) and run it again`;
}

/** A state file or lock that cannot be written because its volume is full or read-only. */
export class UnwritableError extends L2Error {
  constructor(
    readonly path: string,
    readonly code: string,
  ) {
    super(`cannot write ${path}: the volume ${UNWRITABLE_CODES[code] ?? `refused the write (${code})`} (${code}); free space or remount it read-write`);
  }
}

/** A symlink found where a state file, lock or buffer belongs: never written or read through. */
export class SymlinkRefusedError extends L2Error {
  constructor(readonly path: string) {
    super(`refusing to follow the symlink at ${path}: state files must be regular files; remove the link (rm ${path}) and run again`);
  }
}

/** Maps a write error on `path` to UnwritableError when the volume is full or read-only. */
export function asUnwritable(err: unknown, path: string): unknown {
  const code = errnoCode(err);
  return code && code in UNWRITABLE_CODES ? new UnwritableError(path, code) : err;
}
