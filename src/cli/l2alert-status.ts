/**
 * What `l2alert buffer-status` prints, apart from the commander program (l2alert.ts) so that
 * l2alert-main.ts can run it without loading commander (./light.js).
 */
import { AlertBuffer } from '../alert/buffer.js';
import { EXIT } from '../errors.js';
import { formatAge, formatBytes } from '../output/index.js';
import { statePaths } from '../state/paths.js';
import type { Context, ProgramSpec } from './light.js';

export const spec: ProgramSpec = { name: 'l2alert', description: 'Deliver L2 Dash alerts to the webhook, buffering them when it is unreachable', groups: ['alert'] };

/** buffered (undelivered) alerts: count, ages, size, dropped, last error */
export async function bufferStatusCommand({ cfg, out }: Context, opts: { json?: boolean }): Promise<number> {
  const buffer = new AlertBuffer(cfg.ALERT_BUFFER_FILE, statePaths(cfg.BACKUP_ROOT).alertDelivery, cfg.ALERT_BUFFER_MAX, (m) => out.warn(m));
  const stats = await buffer.stats();
  const state = await buffer.readState();
  const report = {
    file: cfg.ALERT_BUFFER_FILE,
    count: stats.count,
    sizeBytes: stats.sizeBytes,
    oldest: stats.oldest ?? null,
    newest: stats.newest ?? null,
    oldestAgeSeconds: stats.oldest ? Math.round((Date.now() - Date.parse(stats.oldest)) / 1000) : null,
    newestAgeSeconds: stats.newest ? Math.round((Date.now() - Date.parse(stats.newest)) / 1000) : null,
    spilled: stats.spilled,
    deadLetters: stats.deadLetters,
    deadLetterFile: buffer.deadLetterPath,
    droppedTotal: state.droppedTotal,
    droppedUnreported: state.droppedUnreported,
    lastSuccessAt: state.lastSuccessAt ?? null,
    lastError: state.lastError ?? null,
    lastErrorAt: state.lastErrorAt ?? null,
    webhookConfigured: Boolean(cfg.ALERT_WEBHOOK_URL),
  };
  if (opts.json) {
    out.json(report);
    return EXIT.OK;
  }
  out.print(`buffered alerts: ${stats.count}${stats.oldest ? ` (oldest ${formatAge(stats.oldest)} ago, newest ${formatAge(stats.newest)} ago)` : ''}`);
  out.print(`buffer file:     ${cfg.ALERT_BUFFER_FILE} (${formatBytes(stats.sizeBytes)})`);
  if (stats.spilled) out.print(`spilled:         ${stats.spilled} (in ${buffer.spillDir}, collected by the next flush)`);
  out.print(`dead letters:    ${stats.deadLetters}${stats.deadLetters ? ` (rejected by the webhook for good; in ${buffer.deadLetterPath})` : ''}`);
  out.print(`dropped:         ${state.droppedTotal} in total${state.droppedUnreported ? `, ${state.droppedUnreported} not yet reported` : ''}`);
  out.print(`last delivery:   ${state.lastSuccessAt ? `${state.lastSuccessAt} (${formatAge(state.lastSuccessAt)} ago)` : 'never'}`);
  if (state.lastError) out.print(`last error:      ${state.lastError} at ${state.lastErrorAt}`);
  if (!cfg.ALERT_WEBHOOK_URL) out.print('webhook:         ALERT_WEBHOOK_URL is not set (alerts are log lines only)');
  return EXIT.OK;
}
