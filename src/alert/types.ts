export const ALERT_LEVELS = ['info', 'warning', 'error', 'critical'] as const;
export type AlertLevel = (typeof ALERT_LEVELS)[number];

export interface Alert {
  /** Stable across retries and re-deliveries, so receivers can drop duplicates. */
  id: string;
  level: AlertLevel;
  title: string;
  message: string;
  /** Which program or check raised it (l2backup, l2health/algo, ...). */
  source: string;
  /** Alerts with the same key are folded into one digest after an outage. */
  key: string;
  host: string;
  time: string;
}

export function isAlert(v: unknown): v is Alert {
  if (!v || typeof v !== 'object') return false;
  const a = v as Record<string, unknown>;
  return (
    typeof a.id === 'string' &&
    typeof a.title === 'string' &&
    typeof a.message === 'string' &&
    typeof a.source === 'string' &&
    typeof a.key === 'string' &&
    typeof a.host === 'string' &&
    typeof a.time === 'string' &&
    (ALERT_LEVELS as readonly unknown[]).includes(a.level)
  );
}
