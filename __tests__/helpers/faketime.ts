/** Runs a built program with its clock moved by libfaketime (Debian's faketime package). */
export const LIBFAKETIME = '/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1';

/** The environment of a run whose clock reads `faketime` (libfaketime syntax: "+10d", "@2026-11-20 02:00:03"). */
export function fakeTimeEnv(env: Record<string, string>, faketime: string): Record<string, string> {
  return { ...env, LD_PRELOAD: LIBFAKETIME, FAKETIME: faketime, FAKETIME_DONT_RESET: '1' };
}
