/** Network errors in words, for check reasons an operator can act on. */
export function networkReason(err: unknown, timeoutMs: number): string {
  const e = err as { code?: string; name?: string; message?: string };
  const code = e.code ?? '';
  if (e.name === 'TimeoutError' || code === 'ETIMEDOUT') return `no answer within ${timeoutMs} ms`;
  if (e.name === 'AbortError' || code === 'ERR_ABORTED' || code === 'ABORT_ERR') return 'aborted: the run budget was used up';
  const words: Record<string, string> = {
    ECONNREFUSED: 'connection refused',
    ECONNRESET: 'connection reset',
    ENOTFOUND: 'host not found (DNS)',
    EAI_AGAIN: 'DNS lookup failed (temporary)',
    EHOSTUNREACH: 'host unreachable',
    ENETUNREACH: 'network unreachable',
    EPIPE: 'connection closed',
    ERR_STREAM_PREMATURE_CLOSE: 'connection closed early',
  };
  if (words[code]) return words[code]!;
  if (/CERT|SSL|TLS|SELF_SIGNED|UNABLE_TO_VERIFY/i.test(code)) return `TLS error (${code})`;
  return code ? `request failed (${code})` : `request failed (${(e.message ?? 'error').slice(0, 120)})`;
}
