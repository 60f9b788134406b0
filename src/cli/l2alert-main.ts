/**
 * l2alert's entry (scripts/bundle.mjs): `buffer-status` and `config`, run often, start without
 * commander (./light.js); every other command line goes (bin/l2alert.js) to the commander program in l2alert.ts.
 */
import { configCommand, runLight } from './light.js';
import { bufferStatusCommand, spec } from './l2alert-status.js';

/** Runs argv when it is a light command; false (nothing done) for any other command line. */
export async function main(argv: string[]): Promise<boolean> {
  return runLight(spec, argv, { 'buffer-status': { flags: ['--json'], body: bufferStatusCommand }, config: { flags: ['--json'], body: configCommand } });
}
