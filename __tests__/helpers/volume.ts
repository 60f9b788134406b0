/** Real full volumes for the tests that need one (a tiny tmpfs, mounted by the test as root). */
import { closeSync, openSync, writeSync } from 'node:fs';
import { join } from 'node:path';

/** Fills every free page of the volume at `dir` with one file, `filler`, until the write fails (ENOSPC). */
export function fillVolume(dir: string): void {
  const fd = openSync(join(dir, 'filler'), 'w');
  try {
    for (;;) writeSync(fd, Buffer.alloc(4096, 1));
  } catch {
    // ENOSPC: the volume is full
  } finally {
    closeSync(fd);
  }
}
