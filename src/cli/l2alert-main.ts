/**
 * l2alert's entry (scripts/bundle.mjs): `buffer-status` and `config`, run often, start without
 * commander (./light.js); every other command line goes to the commander program in l2alert.ts.
 */
import { configCommand, runLight } from './light.js';
import { bufferStatusCommand, spec } from './l2alert-status.js';

export async function main(argv: string[]): Promise<void> {
  if (await runLight(spec, argv, { 'buffer-status': { flags: ['--json'], body: bufferStatusCommand }, config: { flags: ['--json'], body: configCommand } })) return;
  await (await import('./l2alert.js')).main(argv);
}
