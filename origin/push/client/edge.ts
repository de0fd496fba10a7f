/**
 * The push client's HTTP: every request to the edge with the token, a body
 * of exact length (a Buffer or string, sent with its Content-Length, which
 * cloudflared needs), and retries of what is temporary — no answer, 5xx, 429
 * (Retry-After honoured, bounded) — until a deadline. A 4xx is the answer.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { createRequire } from 'node:module';
import { CONTENT_TYPE } from '../../../shared/contract.ts';

// Required, not imported: an ES import of node:http builds its module namespace, whose lazy WebSocket,
// CloseEvent and MessageEvent exports load undici (about 50 ms of every run's start-up, for nothing here).
const require = createRequire(import.meta.url);
const http = require('node:http') as typeof import('node:http');
const https = require('node:https') as typeof import('node:https');

/**
 * An answer's headers by name. Not the web's Headers class: its first use loads undici, about 50 ms of
 * every `eris push` run's start-up (a post-build hook pays that after every build), for two header reads.
 */
export interface AnswerHeaders {
  get(name: string): string | null;
}

/** node:http's headers as AnswerHeaders (no headers: an answer that never came). */
export function answerHeaders(h: IncomingHttpHeaders = {}): AnswerHeaders {
  return {
    get(name) {
      const v = h[name.toLowerCase()];
      return typeof v === 'string' ? v : Array.isArray(v) ? v.join(', ') : null;
    },
  };
}

export interface EdgeAnswer {
  status: number;
  text: string;
  headers: AnswerHeaders;
}

export interface EdgeClientOptions {
  /** The edge's base URL, without a trailing slash. */
  url: string;
  /** The Authorization header value. */
  authorization: string;
  /** How long a request keeps retrying temporary failures (origin restarting, network cut). */
  retryForMs: number;
  /** Per-attempt budget. */
  timeoutMs?: number;
  /** Told of each retry (the progress output says so in CI logs). */
  onRetry?: (what: string, reason: string, waitMs: number) => void;
}

export class PushRequestError extends Error {
  override name = 'PushRequestError';
  readonly status?: number;
  constructor(message: string, status?: number) {
    super(message);
    this.status = status;
  }
}

export interface EdgeClient {
  request(method: string, path: string, body?: Buffer | string, contentType?: string): Promise<EdgeAnswer>;
  /** One attempt, no retries: status 0 when no answer came (the reason in `text`); a 5xx is returned as is. */
  once(method: string, path: string, body?: Buffer | string, contentType?: string): Promise<EdgeAnswer>;
  /** The same, where any non-2xx is an error (its one line in the message). */
  json<T>(method: string, path: string, body?: unknown): Promise<{ value: T; headers: AnswerHeaders }>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A temporary failure: no answer, 5xx or 429. */
export const isTemporary = (a: EdgeAnswer) => a.status === 0 || a.status >= 500 || a.status === 429;

export function createEdgeClient(o: EdgeClientOptions): EdgeClient {
  const base = new URL(o.url);
  const transport = base.protocol === 'https:' ? https : http;
  // Kept-alive connections; node:http rather than fetch: fetch sends a large Buffer body about 10x slower.
  const agent = new transport.Agent({ keepAlive: true, maxSockets: 16 });

  function once(method: string, path: string, body?: Buffer | string, contentType?: string): Promise<EdgeAnswer> {
    return new Promise((resolve) => {
      const payload = body === undefined ? undefined : typeof body === 'string' ? Buffer.from(body) : body;
      const headers: Record<string, string> = { Authorization: o.authorization, Accept: '*/*' };
      if (contentType) headers['Content-Type'] = contentType;
      if (payload) headers['Content-Length'] = String(payload.length);
      const failed = (reason: string) => resolve({ status: 0, text: reason, headers: answerHeaders() });
      const req = transport.request(new URL(base.pathname.replace(/\/+$/, '') + path, base), { method, headers, agent, timeout: o.timeoutMs ?? 300_000 }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (d: Buffer) => chunks.push(d));
        res.on('error', (e) => failed((e as NodeJS.ErrnoException).code ?? e.message));
        res.on('aborted', () => failed('answer cut'));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8'), headers: answerHeaders(res.headers) }));
      });
      req.on('timeout', () => req.destroy(Object.assign(new Error('timed out'), { code: 'ETIMEDOUT' })));
      req.on('error', (e) => failed((e as NodeJS.ErrnoException).code ?? e.message));
      req.end(payload);
    });
  }

  /** How long to wait before the next attempt after `a`, or undefined when `a` is the answer. */
  function retryAfterMs(a: EdgeAnswer): number | undefined {
    if (!isTemporary(a)) return undefined;
    const ra = Number(a.headers.get('retry-after'));
    return Number.isFinite(ra) && ra > 0 ? Math.min(ra * 1000, 10_000) : 0;
  }

  async function request(method: string, path: string, body?: Buffer | string, contentType?: string): Promise<EdgeAnswer> {
    const deadline = Date.now() + o.retryForMs;
    let wait = 250;
    for (let attempt = 1; ; attempt++) {
      const a = await once(method, path, body, contentType);
      const after = retryAfterMs(a);
      if (after === undefined) return a;
      const reason = a.status ? `${a.status} ${a.text.trim().split('\n')[0]?.slice(0, 200) ?? ''}` : a.text;
      const retryAfter = after || undefined;
      const ms = retryAfter ?? wait;
      if (Date.now() + ms > deadline) throw new PushRequestError(`${method} ${path.split('?')[0]}: ${reason} (gave up after ${attempt} attempts)`);
      o.onRetry?.(`${method} ${path.split('?')[0]}`, reason, ms);
      await sleep(ms);
      wait = Math.min(wait * 2, 5000);
    }
  }
  return {
    request,
    once,
    async json<T>(method: string, path: string, body?: unknown) {
      const a = await request(method, path, body === undefined ? undefined : JSON.stringify(body), body === undefined ? undefined : CONTENT_TYPE.json);
      if (a.status < 200 || a.status > 299) throw new PushRequestError(`${method} ${path.split('?')[0]}: ${a.status} ${a.text.trim().split('\n')[0] ?? ''}`, a.status);
      try {
        return { value: JSON.parse(a.text) as T, headers: a.headers };
      } catch {
        throw new PushRequestError(`${method} ${path.split('?')[0]}: the answer is not JSON (is ${o.url} an eris edge?)`, a.status);
      }
    },
  };
}
