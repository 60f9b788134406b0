export type CheckStatus = 'up' | 'degraded' | 'down';

export interface CheckResult {
  name: string;
  kind: 'http' | 'sse' | 'backup' | 'alert-buffer';
  status: CheckStatus;
  /** HTTP: response time; SSE: time to first frame */
  latencyMs?: number;
  reason: string;
  httpStatus?: number;
  sse?: { timeToHeadersMs?: number; timeToFirstFrameMs?: number; frames: number; longestGapMs?: number };
}
