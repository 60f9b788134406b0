/**
 * Lean GETs for downloads (issue 14). A remote restore makes one GET per object; through the
 * SDK's command stack (middleware list built per command, endpoint rules, schema serde, retry
 * and user-agent middleware) each cost ~3.5 ms of CPU, 2.5-3x what the signed request itself
 * costs, and on a loaded machine that CPU was most of a restore's time. Here the GET is signed
 * by the client's own SigV4 signer, sent through the client's own request handler (the same
 * keep-alive sockets, connection, socket and request timeouts) to the URL the client's own
 * endpoint rules give for the bucket, and retried as the SDK's standard strategy retries
 * (S3_ATTEMPTS attempts, exponential backoff with jitter, on 5xx, throttling, timeouts and
 * dropped connections). An error answer becomes an Error named by its S3 code with
 * $metadata.httpStatusCode, as the SDK's are, so describe() and the missing-object checks read
 * it the same way. Anything but plain SigV4 (S3 Express, multi-region access points) is left
 * to the SDK: make() answers undefined.
 */
import type { S3Client } from '@aws-sdk/client-s3';
import type { Readable } from 'node:stream';
import type * as SdkRetry from '@smithy/core/retry';

/** What the SDK's error classifier reads of an error. */
type SdkError = Parameters<typeof SdkRetry.isTransientError>[0];
/**
 * The SDK's error classifier, loaded by make(): `l2backup status` bundles this module (through
 * remote.ts) and must not load the SDK's code at start-up.
 */
let classify: typeof SdkRetry | undefined;

/** What a GET answered: the fields of the SDK's GetObject output that the callers read. */
export interface GetAnswer {
  Body: Readable;
  ContentLength?: number;
  ContentRange?: string;
  $metadata: { httpStatusCode?: number };
}

interface SignableRequest {
  method: string;
  protocol: string;
  hostname: string;
  port?: number;
  path: string;
  query: Record<string, string>;
  headers: Record<string, string>;
}

interface Signer {
  sign(req: SignableRequest, opts: { signingDate?: Date; signingRegion?: string; signingService?: string }): Promise<SignableRequest>;
}

interface Handler {
  handle(req: SignableRequest, opts: { abortSignal?: AbortSignal }): Promise<{ response: { statusCode: number; headers: Record<string, string>; body: Readable } }>;
}

/** The parts of the SDK's resolved client config used here (not all in its public types). */
interface ClientConfig {
  region: () => Promise<string>;
  useFipsEndpoint: () => Promise<boolean>;
  useDualstackEndpoint: () => Promise<boolean>;
  endpointProvider: (params: Record<string, unknown>) => { url: URL; properties?: { authSchemes?: { name?: string; signingName?: string; signingRegion?: string }[] } };
  signer: (authScheme?: unknown) => Promise<Signer>;
  requestHandler: Handler;
  systemClockOffset?: number;
}

const EMPTY_SHA256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';
/** The SDK's threshold for correcting the client's clock from an answer's Date. */
const CLOCK_SKEW_MS = 300_000;
const MAX_RETRY_DELAY_MS = 20_000;
const ERROR_BODY_BYTES = 64 * 1024;

/** An error answer, shaped as the SDK's service errors are (name = the S3 code). */
export class S3AnswerError extends Error {
  /** clockSkewCorrected: the client's clock offset was corrected from this answer's Date, worth another attempt (the SDK's mark). */
  readonly $metadata: { httpStatusCode: number; clockSkewCorrected?: true };
  readonly Code: string;
  constructor(code: string, status: number, message: string) {
    super(message);
    this.name = code;
    this.Code = code;
    this.$metadata = { httpStatusCode: status };
  }
}

/** A key as S3 wants it in the path: each segment percent-encoded (RFC 3986), slashes kept. */
export function keyPath(key: string): string {
  return key
    .split('/')
    .map((s) => encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`))
    .join('/');
}

async function readErrorBody(body: Readable): Promise<string> {
  const chunks: Buffer[] = [];
  let n = 0;
  try {
    for await (const c of body) {
      chunks.push(c as Buffer);
      n += (c as Buffer).length;
      if (n >= ERROR_BODY_BYTES) break;
    }
  } catch {
    // the error answer's body is only for its words
  } finally {
    body.destroy();
  }
  return Buffer.concat(chunks).toString('utf8');
}

const fallbackCode = (status: number) => (status === 404 ? 'NotFound' : status === 403 ? 'Forbidden' : status === 416 ? 'InvalidRange' : status === 301 ? 'PermanentRedirect' : `Http${status}`);

async function answerError(status: number, body: Readable): Promise<S3AnswerError> {
  const xml = await readErrorBody(body);
  const code = /<Code>([^<]{1,200})<\/Code>/.exec(xml)?.[1] ?? fallbackCode(status);
  const message = /<Message>([^<]{0,500})<\/Message>/.exec(xml)?.[1] ?? `HTTP ${status}`;
  return new S3AnswerError(code, status, message);
}

/**
 * The SDK's standard retry strategy's classes, from the SDK's own classifier (so new codes
 * arrive with the SDK): throttling, transient and server errors are retried, client errors not.
 */
function retryable(err: unknown): 'transient' | 'throttling' | undefined {
  if (typeof err !== 'object' || err === null || !classify) return undefined;
  const e = err as SdkError;
  if (classify.isThrottlingError(e)) return 'throttling';
  if (classify.isTransientError(e) || classify.isServerError(e)) return 'transient';
  return undefined;
}

function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

export class LeanGet {
  private constructor(
    private readonly cfg: ClientConfig,
    private readonly signer: Signer,
    private readonly url: URL,
    private readonly signingRegion: string,
    private readonly signingService: string,
    private readonly attempts: number,
  ) {}

  /** The lean GET for `bucket`, or undefined when the client's endpoint rules want more than plain SigV4. */
  static async make(client: S3Client, bucket: string, endpoint: string | undefined, attempts: number): Promise<LeanGet | undefined> {
    classify ??= await import('@smithy/core/retry');
    const cfg = client.config as unknown as ClientConfig;
    const region = await cfg.region();
    const resolved = cfg.endpointProvider({
      Bucket: bucket,
      Region: region,
      UseFIPS: await cfg.useFipsEndpoint(),
      UseDualStack: await cfg.useDualstackEndpoint(),
      Accelerate: false,
      ...(endpoint ? { Endpoint: endpoint, ForcePathStyle: true } : {}),
    });
    const scheme = resolved.properties?.authSchemes?.[0];
    if (scheme && scheme.name !== 'sigv4') return undefined;
    if (resolved.url.search || resolved.url.username || resolved.url.password) return undefined;
    const signer = await cfg.signer(scheme);
    return new LeanGet(cfg, signer, resolved.url, scheme?.signingRegion ?? region, scheme?.signingName ?? 's3', attempts);
  }

  /**
   * A signature refused for its time (the host clock is off, or jumped mid-run) moves the
   * client's clock offset to the server's Date, as the SDK's signing middleware does, and marks
   * the error for a retry. The offset is the client's own: its other commands use it too.
   */
  private correctClock(err: S3AnswerError, date: string | undefined): void {
    if (!classify?.isClockSkewError(err as SdkError) || !date) return;
    const serverTime = Date.parse(date);
    if (Number.isNaN(serverTime)) return;
    if (Math.abs(Date.now() + (this.cfg.systemClockOffset ?? 0) - serverTime) < CLOCK_SKEW_MS) return;
    this.cfg.systemClockOffset = serverTime - Date.now();
    err.$metadata.clockSkewCorrected = true;
  }

  /** GETs `key` (bytes `range`, e.g. "bytes=0-99", when given): a 2xx answer, or the error of the last attempt. */
  async get(key: string, range: string | undefined, signal: AbortSignal): Promise<GetAnswer> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.once(key, range, signal);
      } catch (err) {
        const kind = retryable(err);
        if (!kind || attempt >= this.attempts || signal.aborted) throw err;
        const base = kind === 'throttling' ? 500 : 100;
        await pause(Math.floor(Math.min(MAX_RETRY_DELAY_MS, Math.random() * 2 ** attempt * base)), signal);
      }
    }
  }

  private async once(key: string, range: string | undefined, signal: AbortSignal): Promise<GetAnswer> {
    const { url } = this;
    const headers: Record<string, string> = { host: url.host, 'x-amz-content-sha256': EMPTY_SHA256 };
    if (range) headers.range = range;
    const request: SignableRequest = {
      method: 'GET',
      protocol: url.protocol,
      hostname: url.hostname,
      ...(url.port ? { port: Number(url.port) } : {}),
      path: `${url.pathname.replace(/\/$/, '')}/${keyPath(key)}`,
      query: {},
      headers,
    };
    const signed = await this.signer.sign(request, { signingDate: new Date(Date.now() + (this.cfg.systemClockOffset ?? 0)), signingRegion: this.signingRegion, signingService: this.signingService });
    const { response } = await this.cfg.requestHandler.handle(signed, { abortSignal: signal });
    const status = response.statusCode;
    if (status < 200 || status > 299) {
      const err = await answerError(status, response.body);
      this.correctClock(err, response.headers.date);
      throw err;
    }
    const length = response.headers['content-length'];
    return {
      Body: response.body,
      ...(length !== undefined ? { ContentLength: Number(length) } : {}),
      ...(response.headers['content-range'] !== undefined ? { ContentRange: response.headers['content-range'] } : {}),
      $metadata: { httpStatusCode: status },
    };
  }
}
