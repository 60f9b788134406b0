/**
 * Webhook message bodies: Slack incoming-webhook JSON (`text` plus blocks), which Mattermost
 * and plain JSON receivers accept too. Several alerts with one key and one state become one
 * digest line. Every message has its own id, derived from all the alert ids it carries
 * (listed in the body as `alert_ids`), so a receiver that drops duplicates by id never drops
 * new content.
 */
import { createHash } from 'node:crypto';
import type { Alert, AlertLevel } from './types.js';

const EMOJI: Record<AlertLevel, string> = {
  info: ':large_green_circle:',
  warning: ':warning:',
  error: ':red_circle:',
  critical: ':rotating_light:',
};

export interface WebhookMessage {
  /** The message id (X-L2-Alert-Id): the alert's own id for one alert, else derived from all. */
  id: string;
  alerts: Alert[];
  body: string;
}

function hhmm(iso: string): string {
  return iso.slice(11, 16);
}

/** Cuts escaped text to `max` characters, never inside an entity (`&am…` would show as garbage). */
function truncate(s: string, max: number): string {
  if (s.length <= max) return s;
  return s.slice(0, max - 1).replace(/&[a-z]*$/, '') + '…';
}

/** Slack mrkdwn control characters: `<!channel>` or `<html>` from upstream is shown, not interpreted. */
export function escapeMrkdwn(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/** One alert: its own id. Several: a UUID-shaped hash of all their ids, in order. */
export function messageId(alerts: Alert[]): string {
  if (alerts.length === 1) return alerts[0]!.id;
  const h = createHash('sha256').update(alerts.map((a) => a.id).join('\n')).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-5${h.slice(13, 16)}-${((parseInt(h[16]!, 16) & 0x3) | 0x8).toString(16)}${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

export function buildMessage(alerts: Alert[], droppedNote?: string): WebhookMessage {
  const last = alerts[alerts.length - 1]!;
  const level = last.level; // one digest holds one state, so one level
  let headline: string;
  let detail: string;
  if (alerts.length === 1) {
    headline = `[${last.level.toUpperCase()}] ${last.title}`;
    detail = last.message;
  } else {
    const first = alerts[0]!;
    const range = first.time.slice(0, 10) === last.time.slice(0, 10) ? `${hhmm(first.time)}–${hhmm(last.time)} UTC` : `${first.time.slice(0, 16)}Z–${last.time.slice(0, 16)}Z`;
    headline = `[${level.toUpperCase()}] ${alerts.length} × ${last.title}, ${range}`;
    detail = `latest: ${last.message}`;
  }
  if (droppedNote) detail += `\n${droppedNote}`;
  const id = messageId(alerts);
  const text = escapeMrkdwn(`${headline}\n${detail}`);
  const body = {
    text: truncate(text, 3500),
    blocks: [
      { type: 'section', text: { type: 'mrkdwn', text: truncate(`${EMOJI[level]} *${escapeMrkdwn(headline)}*\n${escapeMrkdwn(detail)}`, 2900) } },
      {
        type: 'context',
        elements: [
          { type: 'mrkdwn', text: `level: *${level}*` },
          { type: 'mrkdwn', text: `source: ${escapeMrkdwn(last.source)}` },
          { type: 'mrkdwn', text: `host: ${escapeMrkdwn(last.host)}` },
          { type: 'mrkdwn', text: `time: ${last.time}` },
        ],
      },
    ],
    message_id: id,
    alert_ids: alerts.map((a) => a.id),
  };
  return { id, alerts, body: JSON.stringify(body) };
}

/** What a digest may fold: one key in one state (level and title). */
const stateOf = (a: Alert) => `${a.level}\u0000${a.title}`;

/**
 * Groups buffered alerts (oldest first) into digests: alerts with the same key and the same
 * state, as long as no alert of that key in another state came between them (a DOWN, its
 * RESOLVED and a new DOWN are three messages, in that order). Messages are ordered by their
 * oldest alert.
 */
export function groupDigests(alerts: Alert[]): Alert[][] {
  const groups: Alert[][] = [];
  const open = new Map<string, { state: string; group: Alert[] }>();
  for (const a of alerts) {
    const cur = open.get(a.key);
    if (cur && cur.state === stateOf(a)) {
      cur.group.push(a);
      continue;
    }
    const group = [a];
    groups.push(group);
    open.set(a.key, { state: stateOf(a), group });
  }
  return groups;
}
