/**
 * l2backup's entry (scripts/bundle.mjs): `status` (also bare `l2backup`) and `config` start
 * without commander (./light.js); every other command line goes to the commander program in
 * l2backup.ts.
 */
import { configCommand, runLight } from './light.js';
import { spec, statusCommand } from './l2backup-status.js';

export async function main(argv: string[]): Promise<void> {
  // Bare `l2backup` shows the status, as the old `backup.sh` did.
  const args = argv.length === 2 ? [...argv, 'status'] : argv;
  if (await runLight(spec, args, { status: { flags: ['--json', '--du'], body: statusCommand }, config: { flags: ['--json'], body: configCommand } })) return;
  await (await import('./l2backup.js')).main(argv);
}
