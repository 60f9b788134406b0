// One contender of the lock stress test (__tests__/faults/lock-stress.test.ts): takes the
// mutex COUNT times with the built lock module; inside, it claims a marker file with O_EXCL, so
// a second holder at the same moment is seen as an overlap. With KILL_AT >= 0 it SIGKILLs
// itself while holding the lock at that acquisition (a crash the others must take over from).
// Prints its counts as one JSON line (stdout to a pipe is synchronous on Linux).
import { openSync, closeSync, unlinkSync } from 'node:fs';
import { setImmediate } from 'node:timers';
import { withMutex } from '../../dist/state/lock.js';

const [lockPath, insidePath, count, killAt = '-1'] = process.argv.slice(2);
let overlaps = 0;
let takeovers = 0;
let acquisitions = 0;
const report = (killed) => process.stdout.write(JSON.stringify({ acquisitions, overlaps, takeovers, killed }) + '\n');
for (let i = 0; i < Number(count); i++) {
  await withMutex(
    lockPath,
    'stress',
    async () => {
      acquisitions++;
      let fd;
      try {
        fd = openSync(insidePath, 'wx');
      } catch {
        overlaps++;
        return;
      }
      await new Promise((r) => setImmediate(r));
      closeSync(fd);
      unlinkSync(insidePath);
      if (i === Number(killAt)) {
        report(true);
        process.kill(process.pid, 'SIGKILL');
        await new Promise(() => {});
      }
    },
    600_000,
    () => takeovers++,
  );
}
report(false);
