#!/usr/bin/env node
/**
 * The image's HEALTHCHECK (`docker compose ps` shows healthy/unhealthy): one short Node.js
 * process that reads files only, no network, no package. Unhealthy (exit 1, one line why) when
 *  - cron is not running, or the log copier is gone (a job's first output line would block);
 *  - the last backup job failed (its run record on the volume says so);
 *  - no health check has run for L2_HEALTHCHECK_SILENCE_MINUTES (default 15: three runs of
 *    the every-5-minutes job missed) since the container started: cron runs no jobs.
 *    0 turns this off, for a schedule without the health job.
 */
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

const root = process.env.BACKUP_ROOT || '/backups';
const silenceMinutes = Number(process.env.L2_HEALTHCHECK_SILENCE_MINUTES ?? 15);
const copierPidFile = '/run/l2ops/log-copier.pid';

function unhealthy(why) {
  process.stdout.write(`unhealthy: ${why}\n`);
  process.exit(1);
}

function readJson(file) {
  try {
    return JSON.parse(readFileSync(file, 'utf8'));
  } catch {
    return undefined;
  }
}

function alive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return err.code === 'EPERM';
  }
}

const cronRunning = readdirSync('/proc').some((entry) => {
  if (!/^\d+$/.test(entry)) return false;
  try {
    return readFileSync(`/proc/${entry}/comm`, 'utf8').trim() === 'cron';
  } catch {
    return false;
  }
});
if (!cronRunning) unhealthy('cron is not running');

let copierStartedMs;
try {
  const pid = Number(readFileSync(copierPidFile, 'utf8'));
  if (!alive(pid)) unhealthy(`the log copier (pid ${pid}) is gone: job output would block`);
  copierStartedMs = statSync(copierPidFile).mtimeMs;
} catch (err) {
  unhealthy(`no log copier recorded in ${copierPidFile} (${err.code ?? err.message})`);
}

const lastRun = readJson(join(root, '.l2/backup/last-run.json'));
if (lastRun?.status === 'failed') {
  unhealthy(`the last backup job (${lastRun.command}) failed at ${lastRun.finishedAt}: ${lastRun.error ?? 'see docker compose logs cron'}`);
}

if (Number.isFinite(silenceMinutes) && silenceMinutes > 0) {
  const limitMs = silenceMinutes * 60_000;
  const health = readJson(join(root, '.l2/health/state.json'));
  const lastHealthMs = health?.lastRunAt ? Date.parse(health.lastRunAt) : NaN;
  const sinceMs = Math.max(Number.isFinite(lastHealthMs) ? lastHealthMs : 0, copierStartedMs ?? 0);
  if (Date.now() - sinceMs > limitMs) {
    unhealthy(`no health check has run for over ${silenceMinutes} minutes: is cron running the jobs? (docker compose logs cron)`);
  }
}

const last = lastRun ? `last backup ${lastRun.status} at ${lastRun.finishedAt}` : 'no backup run yet';
process.stdout.write(`healthy: cron running; ${last}\n`);
