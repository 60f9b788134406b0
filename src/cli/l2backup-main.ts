/**
 * l2backup's entry (scripts/bundle.mjs): `status` (also bare `l2backup`) and `config` start
 * without commander (./light.js); every other command line goes (bin/l2backup.js) to the commander program in
 * l2backup.ts.
 */
import { configCommand, runLight } from './light.js';
import { spec, statusCommand } from './l2backup-status.js';

/** Runs argv when it is a light command; false (nothing done) for any other command line. */
export async function main(argv: string[]): Promise<boolean> {
  // Bare `l2backup` shows the status, as the old `backup.sh` did.
  const args = argv.length === 2 ? [...argv, 'status'] : argv;
  return runLight(spec, args, { status: { flags: ['--json', '--du'], body: statusCommand }, config: { flags: ['--json'], body: configCommand } });
}
