/**
 * SSE check: GET with Accept: text/event-stream; up when the answer is 200 with an event-stream
 * content type and a first event *or comment* (heartbeat) arrives within the first-event
 * timeout. Optionally keeps listening for an observation window and measures the longest gap
 * between frames. Parsed with eventsource-parser (handles CRLF, comments, partial chunks).
 * The parser buffers an unfinished line and the data of an unfinished event, so the bytes read
 * since the last dispatched event (less the comments, which it drops) are counted and capped
 * (maxFrameBytes): a stream that never ends a line or an event is DOWN with bounded memory,
 * however many comments it sends in between.
 */
import http from 'node:http';
import https from 'node:https';
import type { HealthTarget } from '../config/index.js';
import type { CheckResult } from './types.js';
import { networkReason } from '../net/reason.js';

export async function checkSse(t: HealthTarget, signal: AbortSignal): Promise<CheckResult> {
  const { createParser } = await import('eventsource-parser');
  return new Promise((resolve) => {
    const started = performance.now();
    const since = () => Math.round(performance.now() - started);
    const sse: NonNullable<CheckResult['sse']> = { frames: 0 };
    let lastFrameAt = 0;
    // Bytes since the last dispatched event, comments excepted: what the parser may be holding.
    let pendingBytes = 0;
    let settled = false;
    let observing = false;
    let timer: NodeJS.Timeout | undefined;
    const lib = t.url.startsWith('https:') ? https : http;

    const finish = (status: CheckResult['status'], reason: string) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      req?.destroy();
      resolve({ name: t.name, kind: 'sse', status, latencyMs: sse.timeToFirstFrameMs, reason, sse });
    };
    const endObservation = () => {
      const tail = since() - lastFrameAt;
      sse.longestGapMs = Math.max(sse.longestGapMs ?? 0, tail);
      if (t.maxGapMs !== undefined && sse.longestGapMs > t.maxGapMs) return finish('degraded', `longest gap between frames ${sse.longestGapMs} ms (max ${t.maxGapMs} ms), ${sse.frames} frames`);
      finish('up', `${sse.frames} frame(s) in ${t.observeMs} ms, longest gap ${sse.longestGapMs} ms`);
    };
    const onFrame = () => {
      const now = since();
      if (sse.frames === 0) {
        sse.timeToFirstFrameMs = now;
      } else {
        sse.longestGapMs = Math.max(sse.longestGapMs ?? 0, now - lastFrameAt);
      }
      sse.frames++;
      lastFrameAt = now;
      if (sse.frames === 1) {
        clearTimeout(timer);
        const slow = (sse.timeToHeadersMs ?? 0) > t.latencyWarnMs;
        if (t.observeMs > 0) {
          observing = true;
          timer = setTimeout(endObservation, t.observeMs);
        } else if (slow) finish('degraded', `slow: headers after ${sse.timeToHeadersMs} ms (threshold ${t.latencyWarnMs} ms)`);
        else finish('up', `first frame after ${now} ms`);
      }
    };
    const parser = createParser({
      onEvent: () => {
        pendingBytes = 0;
        onFrame();
      },
      onComment: (comment) => {
        // ':' + the comment + the line end: dropped by the parser, not held.
        pendingBytes = Math.max(0, pendingBytes - comment.length - 2);
        onFrame();
      },
    });
    const onAbort = () => finish('down', 'aborted: the run budget was used up');
    signal.addEventListener('abort', onAbort, { once: true });

    let req: http.ClientRequest | undefined;
    // A request the client refuses outright (a header it will not send...) makes this target DOWN, not the run fail.
    try {
      req = lib.get(t.url, { headers: { accept: 'text/event-stream', 'cache-control': 'no-cache', 'user-agent': 'l2health', ...t.headers } }, (res) => {
      sse.timeToHeadersMs = since();
      const type = String(res.headers['content-type'] ?? '');
      if (res.statusCode !== 200) return finish('down', `HTTP ${res.statusCode} (expected 200 with text/event-stream)`);
      if (!type.toLowerCase().startsWith('text/event-stream')) return finish('down', `content type "${type.slice(0, 60) || 'none'}", expected text/event-stream`);
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        if (settled) return;
        // Node hands over at most one socket read (64 KiB) at a time, so the parser never holds
        // more than the cap plus one chunk. Counted in UTF-16 units: never more than the bytes.
        pendingBytes += chunk.length;
        parser.feed(chunk);
        if (settled) return;
        if (pendingBytes > t.maxFrameBytes) {
          finish('down', `no frame in ${t.maxFrameBytes} bytes${sse.frames ? ` after frame ${sse.frames}` : ''} (HEALTH_SSE_MAX_FRAME_BYTES)`);
        }
      });
      res.on('end', () => {
        if (sse.frames === 0) finish('down', 'the stream closed before the first event');
        else if (observing) finish('down', `the stream closed during observation after ${sse.frames} frame(s)`);
      });
      res.on('error', (err) => finish('down', networkReason(err, t.firstEventTimeoutMs)));
    });
    } catch (err) {
      return finish('down', `the request could not be made: ${err instanceof Error ? err.message : String(err)}`);
    }
    req.on('error', (err) => finish('down', networkReason(err, t.firstEventTimeoutMs)));
    timer = setTimeout(() => {
      if (sse.timeToHeadersMs === undefined) finish('down', `no answer within ${t.firstEventTimeoutMs} ms`);
      else finish('down', `no event or comment within ${t.firstEventTimeoutMs} ms (headers after ${sse.timeToHeadersMs} ms)`);
    }, t.firstEventTimeoutMs);
  });
}
