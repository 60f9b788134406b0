/**
 * Webhook message bodies: Slack incoming-webhook JSON (`text` plus blocks), which Mattermost
 * and plain JSON receivers accept too. Several alerts with one key become one digest line.
 */
import type { Alert, AlertLevel } from './types.js';

const EMOJI: Record<AlertLevel, string> = {
  info: ':large_green_circle:',
  warning: ':warning:',
  error: ':red_circle:',
  critical: ':rotating_light:',
};

const RANK: Record<AlertLevel, number> = { info: 0, warning: 1, error: 2, critical: 3 };

export interface WebhookMessage {
  alerts: Alert[];
  body: string;
}

function hhmm(iso: string): string {
  return iso.slice(11, 16);
}

function truncate(s: string, max: number): string {
  return s.length > max ? s.slice(0, max - 1) + '…' : s;
}

export function buildMessage(alerts: Alert[], droppedNote?: string): WebhookMessage {
  const last = alerts[alerts.length - 1]!;
  const level = alerts.reduce<AlertLevel>((lvl, a) => (RANK[a.level] > RANK[lvl] ? a.level : lvl), 'info');
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
  const text = `${headline}\n${detail}`;
  const body = {
    text: truncate(text, 3500),
    blocks: [
      { type: 'section', text: { type: 'mrkdwn', text: truncate(`${EMOJI[level]} *${headline}*\n${detail}`, 2900) } },
      {
        type: 'context',
        elements: [
          { type: 'mrkdwn', text: `level: *${level}*` },
          { type: 'mrkdwn', text: `source: ${last.source}` },
          { type: 'mrkdwn', text: `host: ${last.host}` },
          { type: 'mrkdwn', text: `time: ${last.time}` },
        ],
      },
    ],
  };
  return { alerts, body: JSON.stringify(body) };
}

/** Groups buffered alerts by key, ordered by each group's oldest alert. */
export function groupByKey(alerts: Alert[]): Alert[][] {
  const groups = new Map<string, Alert[]>();
  for (const a of alerts) {
    const g = groups.get(a.key);
    if (g) g.push(a);
    else groups.set(a.key, [a]);
  }
  return [...groups.values()];
}
