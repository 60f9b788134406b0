/**
 * l2health's entry (scripts/bundle.mjs): `status` and `config` start without commander
 * (./light.js); every other command line goes (bin/l2health.js) to the commander program in l2health.ts.
 */
import { configCommand, runLight } from './light.js';
import { spec, statusCommand } from './l2health-status.js';

/** Runs argv when it is a light command; false (nothing done) for any other command line. */
export async function main(argv: string[]): Promise<boolean> {
  return runLight(spec, argv, { status: { flags: ['--json'], body: statusCommand }, config: { flags: ['--json'], body: configCommand } });
}
