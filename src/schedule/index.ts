/**
 * What the installed crontab says about when a job runs next. Reads `crontab -l` (node's own
 * spawnSync: execa cost ~105 ms of start-up for this one call) and computes the next time with
 * ./cron.ts in UTC; cron-parser (and luxon behind it) is loaded only for a schedule that module
 * does not take or for another time zone. Shared by l2backup and l2health status.
 */
import { formatDuration } from '../output/index.js';
import { nextRunUtc, parseCron } from './cron.js';

export interface CronLine {
  expression: string;
  command: string;
}

export interface ParsedCrontab {
  vars: Record<string, string>;
  jobs: CronLine[];
}

export function parseCrontab(text: string): ParsedCrontab {
  const vars: Record<string, string> = {};
  const jobs: CronLine[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const v = /^([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)$/.exec(line);
    if (v) {
      vars[v[1]!] = v[2]!.replace(/^(["'])(.*)\1$/, '$2');
      continue;
    }
    if (line.startsWith('@')) {
      const [nick, ...rest] = line.split(/\s+/);
      const map: Record<string, string> = { '@daily': '0 0 * * *', '@midnight': '0 0 * * *', '@hourly': '0 * * * *', '@weekly': '0 0 * * 0', '@monthly': '0 0 1 * *', '@yearly': '0 0 1 1 *', '@annually': '0 0 1 1 *' };
      if (map[nick!]) jobs.push({ expression: map[nick!]!, command: rest.join(' ') });
      continue;
    }
    const parts = line.split(/\s+/);
    if (parts.length >= 6) jobs.push({ expression: parts.slice(0, 5).join(' '), command: parts.slice(5).join(' ') });
  }
  return { vars, jobs };
}

export interface NextRun {
  job: string;
  expression?: string;
  next?: string;
  inMs?: number;
  /** why no time could be given */
  warning?: string;
}

const CRONTAB_TIMEOUT_MS = 5000;
const CRONTAB_MAX_BYTES = 1 << 20;

/**
 * Reads the current user's crontab; undefined with a reason when there is none. spawnSync, not
 * execFile: execFile wraps the child's pipes in sockets and streams, about 8 ms of CPU more on
 * every status (README "Benchmarks"); the crontab is the one thing status waits for here.
 */
export async function readCrontab(): Promise<{ text?: string; warning?: string }> {
  // Not import(): in the light bundle (CommonJS) that would start Node's ESM loader just for this.
  const { spawnSync } = process.getBuiltinModule('node:child_process');
  // SIGKILL on the timeout: a crontab that ignores SIGTERM (or a grandchild keeping its pipe)
  // would keep spawnSync, and status with it, waiting for ever.
  const r = spawnSync('crontab', ['-l'], { timeout: CRONTAB_TIMEOUT_MS, killSignal: 'SIGKILL', encoding: 'utf8', maxBuffer: CRONTAB_MAX_BYTES });
  if (!r.error && r.status === 0) return { text: r.stdout };
  const code = (r.error as NodeJS.ErrnoException | undefined)?.code;
  if (code === 'ETIMEDOUT') return { warning: `crontab -l did not answer within ${CRONTAB_TIMEOUT_MS / 1000} s (stopped); the next run is unknown` };
  if (code === 'ENOBUFS') return { warning: `crontab -l printed more than ${CRONTAB_MAX_BYTES >> 20} MiB (stopped there); the next run is unknown: check the crontab` };
  if (r.error) return { warning: 'the crontab command is not available here' };
  const why = (r.stderr || `exit ${r.status ?? r.signal ?? 'error'}`).trim().split('\n')[0];
  return { warning: `no crontab installed for this user (crontab -l: ${why})` };
}

/** cron-parser is CommonJS: in the standalone bundle's split chunk its exports sit under `default`. */
async function loadCronParser(): Promise<typeof import('cron-parser')> {
  const mod = (await import('cron-parser')) as typeof import('cron-parser') & { default?: typeof import('cron-parser') };
  return mod.CronExpressionParser ? mod : mod.default!;
}

const UTC_NAMES = new Set(['UTC', 'Etc/UTC']);

/** The next run of the first job whose command matches, from crontab text. */
export async function nextRunFrom(text: string, job: string, matches: RegExp, now = new Date()): Promise<NextRun> {
  const tab = parseCrontab(text);
  const line = tab.jobs.find((j) => matches.test(j.command));
  if (!line) return { job, warning: `the crontab has no line for ${job}` };
  const tz = tab.vars.CRON_TZ ?? tab.vars.TZ ?? 'UTC';
  const schedule = UTC_NAMES.has(tz) ? parseCron(line.expression) : undefined;
  const own = schedule && nextRunUtc(schedule, now);
  if (own) return { job, expression: line.expression, next: own.toISOString(), inMs: own.getTime() - now.getTime() };
  const { CronExpressionParser } = await loadCronParser();
  try {
    const next = CronExpressionParser.parse(line.expression, { currentDate: now, tz }).next().toDate();
    return { job, expression: line.expression, next: next.toISOString(), inMs: next.getTime() - now.getTime() };
  } catch {
    return { job, expression: line.expression, warning: `the crontab line for ${job} has an invalid schedule "${line.expression}"` };
  }
}

export async function nextRun(job: string, matches: RegExp): Promise<NextRun> {
  const tab = await readCrontab();
  if (tab.text === undefined) return { job, warning: tab.warning };
  return nextRunFrom(tab.text, job, matches);
}

export function describeNextRun(n: NextRun): string {
  if (!n.next) return `next ${n.job}: unknown (see the warning)`;
  return `next ${n.job}: ${n.next.slice(0, 16).replace('T', ' ')} UTC (in ${formatDuration(n.inMs!)})`;
}
