/**
 * Model-based test of l2backup (issue 9 §5): random sequences of changes to the live sources,
 * clock moves, S3 server up/down/hung, and l2backup runs (nightly, snapshot,
 * emergency-pre-restore, restore, prune, upload, verify; some SIGKILLed at a random moment),
 * against the built bin/l2backup.js on a scratch volume. After every step the real side is
 * compared with a small reference model (see world.ts for the checks). Seeded and shrinking.
 *
 * In `npm test`: a short run (MODEL_TIME_MS, default 120 s, at most MODEL_RUNS sequences).
 * `scripts/soak 30m` runs it for as long as asked and prints the figures.
 * Replay a failure: MODEL_SEED=<seed> MODEL_PATH=<path> npx jest __tests__/model
 * Known issue-9 defects that still fail are switched in known-defects.ts.
 */
import fc from 'fast-check';
import { startS3, type TestS3 } from '../helpers/s3.js';
import { startFaultProxy, type FaultProxy } from '../helpers/fault-proxy.js';
import { World, ModelFailure, stats } from './world.js';
import { commandArb, seedSources, setS3 } from './commands.js';
import { KNOWN_DEFECTS_PENDING } from './known-defects.js';

const TIME_MS = Number(process.env.MODEL_TIME_MS ?? 120_000);
const SOAK = process.env.MODEL_SOAK === '1';
const MAX_RUNS = Number(process.env.MODEL_RUNS ?? (SOAK ? 1e9 : 20));
const MAX_COMMANDS = Number(process.env.MODEL_MAX_COMMANDS ?? (SOAK ? 40 : 14));
/** How long one failure may shrink before the smallest sequence found so far is reported. */
const SHRINK_MS = Number(process.env.MODEL_SHRINK_MS ?? (SOAK ? 15 * 60_000 : 60_000));

let s3: TestS3;
let proxy: FaultProxy;
beforeAll(async () => {
  s3 = await startS3('l2model');
  proxy = await startFaultProxy(s3.endpoint);
});
afterAll(async () => {
  proxy.hang = false;
  await proxy.close();
  await s3.stop();
});

let sequence = 0;
let lastLog: string[] = [];
/**
 * Shrinking is bounded here, not with fast-check's interruptAfterTimeLimit: that races a running
 * async sequence against the clock, so on a loaded machine one slow sequence was cut off half way
 * (and went on in the background) and reported as a failure with no counterexample. Once a
 * failure has shrunk for SHRINK_MS, every further shrink candidate passes without running, so
 * fast-check ends with the smallest failing sequence found so far.
 */
let firstFailureAt: number | undefined;
let shrinkCut = false;

const property = fc.asyncProperty(fc.commands([commandArb], { maxCommands: MAX_COMMANDS }), async (cmds) => {
  if (firstFailureAt !== undefined && Date.now() - firstFailureAt > SHRINK_MS) {
    shrinkCut = true;
    return;
  }
  const w = new World(s3, proxy, ++sequence);
  stats.sequences++;
  try {
    proxy.hang = false;
    // The proxy is shared: make sure it listens (a previous sequence may have left it refusing).
    await setS3(w, 'up');
    seedSources(w);
    await fc.asyncModelRun(() => ({ model: w, real: w }), cmds);
  } catch (err) {
    lastLog = [...w.log, `FAILED: ${err instanceof Error ? err.message : String(err)}`];
    firstFailureAt ??= Date.now();
    throw err;
  } finally {
    proxy.hang = false;
    w.dispose();
  }
});

test('l2backup against a reference model: random steps, kills, clock moves and S3 faults', async () => {
  const deadline = Date.now() + TIME_MS;
  const failures: string[] = [];
  let runs = 0;
  const fixedSeed = process.env.MODEL_SEED !== undefined ? Number(process.env.MODEL_SEED) : undefined;
  while (runs < MAX_RUNS && Date.now() < deadline) {
    const seed = fixedSeed ?? (Date.now() ^ (Math.random() * 0x7fffffff)) | 0;
    firstFailureAt = undefined;
    shrinkCut = false;
    // One sequence per check; the deadline only decides whether another one starts.
    const res = await fc.check(property, {
      seed,
      path: fixedSeed !== undefined ? process.env.MODEL_PATH : undefined,
      numRuns: 1,
    });
    runs++;
    if (res.failed) {
      stats.failures++;
      const err = res.errorInstance;
      const known = err instanceof ModelFailure ? '' : ' (not a model check: a crash of the test itself?)';
      failures.push(
        [
          `model test failure${known}: seed ${res.seed}, path "${res.counterexamplePath}" (replay: MODEL_SEED=${res.seed} MODEL_PATH="${res.counterexamplePath}" npx jest __tests__/model)`,
          `minimal sequence (${res.numShrinks} shrinks${shrinkCut ? `, shrinking stopped after ${SHRINK_MS / 1000} s` : ''}): ${res.counterexample ? String(res.counterexample[0]) : '?'}`,
          ...lastLog.map((l) => `  | ${l}`),
        ].join('\n'),
      );
      process.stderr.write(`\n${failures[failures.length - 1]}\n`);
      if (!SOAK || fixedSeed !== undefined) break;
    }
    if (fixedSeed !== undefined) break;
  }
  const known = [...stats.known].map(([k, n]) => `${k} x${n}`).join(', ') || 'none';
  const off = Object.entries(KNOWN_DEFECTS_PENDING).filter(([, v]) => v).map(([k]) => k);
  process.stderr.write(
    `\nmodel test: ${stats.sequences} sequences, ${stats.steps} steps, ${stats.runs} l2backup runs, ${stats.kills} kills, ${stats.checks} checks, ${failures.length} failures; known-defect hits: ${known}; checks switched off pending fixes: ${off.join(', ') || 'none'}\n`,
  );
  expect(failures).toEqual([]);
  // Generous: a started sequence always runs to its end, however loaded the machine (issue 9 §6).
}, TIME_MS + SHRINK_MS + 600_000);
