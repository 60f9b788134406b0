/**
 * `l2backup status` (also bare `l2backup`) and `list`'s table, apart from the commander program
 * (l2backup.ts) so that l2backup-main.ts can run status without loading commander (./light.js).
 */
import { EXIT } from '../errors.js';
import { formatAge, formatBytes, type Output } from '../output/index.js';
import { backupStatus, type localRows } from '../backup/status.js';
import { storageUsage, type LocalSnapshotUsage, type StorageUsage, type Trend } from '../backup/usage.js';
import { describeDrill } from '../backup/drill-record.js';
import { describeNextRun, nextRun } from '../schedule/index.js';
import type { Context, ProgramSpec } from './light.js';

export const spec: ProgramSpec = { name: 'l2backup', description: 'Snapshots of L2 Dash models, logs, reports and configs: local, incremental, and on S3/MinIO', groups: ['alert', 'backup'] };

/** last run, snapshots, remote state, free space, lock holder, next run */
export async function statusCommand({ cfg, out }: Context, opts: { json?: boolean; du?: boolean }): Promise<number> {
  const st = await backupStatus(cfg, (m) => out.warn(m));
  const next = await nextRun('nightly', /(l2backup|backup\.sh)"?\s+nightly/);
  const usage = await storageUsage(cfg, (m) => out.warn(m), Date.now(), opts.du === true);
  if (opts.json) {
    out.json({ ...st, nextRun: next, usage });
    return EXIT.OK;
  }
  const lr = st.lastRun;
  out.print(`backups volume: ${st.root}${st.disk ? ` (${formatBytes(st.disk.freeBytes)} free of ${formatBytes(st.disk.totalBytes)})` : ''}`);
  const runWords = (r: NonNullable<typeof lr>) => (r.status === 'pending' ? `LOCAL OK, REMOTE PENDING since ${r.remotePendingSince ?? r.finishedAt}` : r.status.toUpperCase());
  out.print(`last run:       ${lr ? `${lr.command} ${runWords(lr)} ${formatAge(lr.finishedAt)} ago${lr.id ? ` (${lr.id})` : ''}${lr.error ? `: ${lr.error}` : ''}` : 'never'}`);
  out.print(`last success:   ${st.lastSuccess ? `${st.lastSuccess.id} ${formatAge(st.lastSuccess.finishedAt)} ago` : 'never'}`);
  out.print(`remote:         ${st.remote.configured ? `${st.remote.url} (${st.remote.uploaded} uploaded, ${st.remote.pending.length} pending${st.remote.pending.length ? `: ${st.remote.pending.join(', ')}` : ''}${st.remote.skipped.length ? `, ${st.remote.skipped.length} could not be uploaded: ${st.remote.skipped.join(', ')}` : ''})` : 'off (BACKUP_BUCKET not set)'}`);
  if (st.remote.pendingSince) out.print(`remote copy:    local ok, remote pending since ${st.remote.pendingSince} (${formatAge(st.remote.pendingSince)})`);
  if (st.remote.lastError) out.print(`remote error:   ${st.remote.lastError}`);
  out.print(`last drill:     ${st.lastDrill ? `${st.lastDrill.status.toUpperCase()} ${formatAge(st.lastDrill.finishedAt)} ago: ${describeDrill(st.lastDrill)}` : "never (run 'l2backup drill' to test a restore)"}`);
  out.print(`lock:           ${st.lock ? `held by pid ${st.lock.pid} on ${st.lock.host} ("${st.lock.command}") since ${st.lock.startedAt}${st.lock.stale ? ` (stale: ${st.lock.stale})` : ''}` : 'free'}`);
  out.print(describeNextRun(next));
  if (next.warning) out.warn(next.warning);
  printUsage(out, usage);
  out.print('');
  const own = new Map(usage.local.snapshots.map((u) => [u.id + (u.preRestore ? '+' : ''), u]));
  printSnapshots(out, st.snapshots, (r) => own.get(r.id + (r.preRestore ? '+' : '')));
  return EXIT.OK;
}

type Row = Awaited<ReturnType<typeof localRows>>[number];

/** `usage`: status adds each snapshot's bytes on the volume (own, and shared by hard links with older ones): as recorded, or du-style with --du. */
export function printSnapshots(out: Output, rows: Row[], usage?: (r: Row) => LocalSnapshotUsage | undefined): void {
  if (rows.length === 0) {
    out.print('no snapshots yet');
    return;
  }
  const cols = (r: Row) => [r.id, r.kind + (r.partial ? ' (partial)' : ''), String(r.files), formatBytes(r.bytes), formatBytes(r.newBytes), formatAge(r.createdAt), r.remote];
  if (!usage) return out.table(['ID', 'KIND', 'FILES', 'SIZE', 'NEW', 'AGE', 'REMOTE'], rows.map(cols));
  out.table(
    ['ID', 'KIND', 'FILES', 'SIZE', 'NEW', 'AGE', 'REMOTE', 'ON DISK', 'SHARED'],
    rows.map((r) => {
      const u = usage(r);
      return [...cols(r), u ? formatBytes(u.ownBytes) : '-', u ? formatBytes(u.sharedBytes) : '-'];
    }),
  );
}

/** The cost lines: bytes now, growth over 30 days, the 30-day forecast against the budget. */
function printUsage(out: Output, u: StorageUsage): void {
  const sign = (n: number) => (n < 0 ? `-${formatBytes(-n)}` : `+${formatBytes(n)}`);
  const line = (t: Trend, what: string) =>
    `${formatBytes(t.bytes)} ${what}; ${t.growth30d === null ? 'growth: no history yet' : `${sign(t.growth30d)} over ${t.growthDays} day(s)`}; ${t.forecast30d === null ? 'forecast: needs samples a day apart' : `forecast in 30 days ${formatBytes(t.forecast30d)}`}${t.budget === null ? '' : ` (budget ${formatBytes(t.budget)})`}${t.overBudget ? ': OVER BUDGET' : ''}`;
  const counted = u.local.counted === 'du' ? 'du, hard links once' : "as recorded: bytes each backup copied; 'status --du' counts as du does";
  out.print(`local storage:  ${line(u.local, `on the volume in ${u.local.snapshots.length} snapshot(s) (${counted})`)}`);
  if (u.remote) out.print(`remote storage: ${line(u.remote, `stored in ${u.remote.snapshots.length} snapshot(s)${u.remote.unknown.length ? ` (+${u.remote.unknown.length} of unknown size: ${u.remote.unknown.join(', ')})` : ''}`)}`);
  for (const [where, t] of [['local', u.local], ['remote', u.remote]] as const) if (t?.overBudget) out.warn(`${where} storage over budget: ${t.overBudget}`);
}

