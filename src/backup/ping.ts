/**
 * BACKUP_PING_URL: the nightly tells an outside watcher (healthchecks.io protocol) that it
 * started and how it ended, so a missing or failed nightly is noticed even when the whole
 * container is gone. `<url>/start` as the job begins (sent alongside the job, not before it),
 * `<url>` on exit 0, `<url>/<exit code>` otherwise (healthchecks.io counts any non-zero code
 * as a failure and shows the code), with a short summary as the POST body. Each ping is bounded
 * by BACKUP_PING_TIMEOUT_MS; a ping that does not land is a warning, never a failed backup.
 */
import type { JobContext } from './jobs.js';
import { BackupRecords, type RunRecord } from './records.js';
import { ping } from '../ping/index.js';
import { EXIT, L2Error, errorMessage } from '../errors.js';
import { formatBytes, formatDuration } from '../output/index.js';

const LABEL = 'backup ping (BACKUP_PING_URL)';

const WORDS: Record<number, string> = { [EXIT.OK]: 'ok', [EXIT.FAILED]: 'failed', [EXIT.USAGE]: 'bad usage or configuration', [EXIT.PARTIAL]: 'partial', [EXIT.LOCKED]: 'another run holds the backup lock' };

export async function withRunPings(ctx: JobContext, command: string, job: () => Promise<number>): Promise<number> {
  const url = ctx.cfg.BACKUP_PING_URL;
  if (!url) return job();
  const { out } = ctx;
  // Bounded by its own timeout only: a run interrupted by SIGTERM still says how it ended.
  const free = new AbortController().signal;
  const timeoutMs = ctx.cfg.BACKUP_PING_TIMEOUT_MS;
  const starting = ping(url, { suffix: 'start', timeoutMs, signal: free, label: `${LABEL} /start` });
  let code: number;
  let failure: unknown;
  try {
    code = await job();
  } catch (err) {
    failure = err;
    code = err instanceof L2Error ? err.exitCode : EXIT.FAILED;
  }
  // The start ping lands before the end ping, or the watcher would see them out of order.
  const startWarning = await starting;
  if (startWarning) out.warn(startWarning);
  const body = out.scrub(await summary(ctx, command, code, failure));
  const endWarning = await ping(url, { suffix: code === EXIT.OK ? undefined : String(code), body, timeoutMs, signal: free, label: LABEL });
  if (endWarning) out.warn(endWarning);
  if (failure !== undefined) throw failure;
  return code;
}

/** A few lines for the watcher's event log: outcome, the run record's figures, the error. No secrets, no paths beyond snapshot ids. */
async function summary(ctx: JobContext, command: string, code: number, failure: unknown): Promise<string> {
  const lines = [`${command}: exit ${code} (${WORDS[code] ?? 'failed'})`];
  const rec: RunRecord | undefined = await new BackupRecords(ctx.cfg.BACKUP_ROOT, () => {})
    .lastRun()
    .catch(() => undefined);
  // Only this run's record: a run stopped before it wrote one (lock held, bad input) must not
  // report the previous run. This process began at timeOrigin; an earlier run's record started
  // before that (a fixed margin here once took a previous run 0.6 s earlier for this one).
  if (rec && Date.parse(rec.startedAt) >= Math.floor(performance.timeOrigin)) {
    lines.push(`snapshot ${rec.id ?? '-'}: ${rec.status}; ${rec.files ?? 0} files, ${formatBytes(rec.bytes ?? 0)}, ${formatBytes(rec.newBytes ?? 0)} new, ${formatDuration(rec.durationMs)}`);
    if (rec.remote) lines.push(`remote: ${rec.remote}`);
    if (rec.warnings) lines.push(`${rec.warnings} warning(s); see 'l2backup status'`);
    if (rec.error) lines.push(`error: ${rec.error}`);
  } else if (failure !== undefined) {
    lines.push(`error: ${errorMessage(failure)}`);
  }
  return lines.join('\n') + '\n';
}
