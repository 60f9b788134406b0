/**
 * l2health's entry (scripts/bundle.mjs): `status` and `config` start without commander
 * (./light.js); every other command line goes to the commander program in l2health.ts.
 */
import { configCommand, runLight } from './light.js';
import { spec, statusCommand } from './l2health-status.js';

export async function main(argv: string[]): Promise<void> {
  if (await runLight(spec, argv, { status: { flags: ['--json'], body: statusCommand }, config: { flags: ['--json'], body: configCommand } })) return;
  await (await import('./l2health.js')).main(argv);
}
