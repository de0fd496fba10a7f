/**
 * Brute-force brake for authentication, per client address.
 *
 * Every failed authentication (a 401 from the auth middleware, which runs
 * after this one, or a 401/403 refusal of the OIDC exchange) is counted with the Workers rate limiting binding
 * (`AUTH_RATE_LIMITER` in wrangler.toml, keyed on CF-Connecting-IP; an IPv6
 * client counts per /64, since one host usually holds a whole /64; see clientKey). When the
 * binding says the key is over its limit, that failure is answered 429 with
 * Retry-After, and this isolate blocks the key for one period: its further
 * requests are answered 429 *before* any credential is checked, so a
 * guesser learns nothing more until the period ends. Requests that
 * authenticate never touch the limiter. Public paths are never blocked.
 *
 * The binding counts per Cloudflare location and is eventually consistent,
 * and the block list is per isolate: this bounds guessing, it does not make
 * it impossible to get a few extra tries. Tokens are 256-bit random values,
 * so guessing is hopeless anyway; the brake mostly stops floods of KV reads
 * and 401 log lines.
 */
import type { Context, MiddlewareHandler } from 'hono';
import { convertIPv4BinaryToString, convertIPv4MappedIPv6ToIPv4, convertIPv6BinaryToString, convertIPv6ToBinary, isIPv4MappedIPv6 } from 'hono/utils/ipaddr';
import type { EdgeEnv } from '../../types.ts';
import type { Log } from '../../log.ts';
import { CONTENT_TYPE } from '../../../shared/contract.ts';

/** The shape of the Workers rate limiting binding (`RateLimit`). */
export interface RateLimiter {
  limit(options: { key: string }): Promise<{ success: boolean }>;
}

export interface AuthRateLimitOptions {
  /** Paths served without credentials; never blocked. */
  publicPaths: ReadonlySet<string>;
  /** The limiter; by default the `AUTH_RATE_LIMITER` binding, else an in-memory one. */
  limiter?: RateLimiter;
  /** Length of the binding's period in seconds (wrangler.toml `simple.period`): how long a key stays blocked. */
  periodSeconds?: number;
  /** Limit for the in-memory fallback (used when no binding is configured). */
  fallbackLimit?: number;
  now?: () => number;
  log: Log;
  /** Most keys the block list holds; beyond that, expired entries are dropped, then the oldest. */
  maxBlocked?: number;
}

/**
 * The key a client is counted under: its address, an IPv6 address cut to its
 * /64 (normalised, so every spelling of one network is one key). An
 * IPv4-mapped IPv6 address (`::ffff:192.0.2.1`) is that IPv4 address.
 */
export function clientKey(ip: string | undefined | null): string {
  const addr = (ip ?? '').trim();
  if (!addr) return 'unknown';
  if (!addr.includes(':')) return addr;
  let bits: bigint;
  try {
    bits = convertIPv6ToBinary(addr);
  } catch {
    return 'invalid:' + addr.slice(0, 64);
  }
  if (isIPv4MappedIPv6(bits)) return convertIPv4BinaryToString(convertIPv4MappedIPv6ToIPv4(bits));
  return convertIPv6BinaryToString((bits >> 64n) << 64n) + '/64';
}

/** A fixed-window counter in memory, when the binding is absent (unit tests, a wrangler.toml without it). */
export function memoryRateLimiter(limit: number, periodMs: number, now: () => number = Date.now): RateLimiter {
  const windows = new Map<string, { epoch: number; count: number }>();
  return {
    async limit({ key }) {
      const epoch = Math.floor(now() / periodMs);
      let w = windows.get(key);
      if (!w || w.epoch !== epoch) {
        if (windows.size > 10_000) windows.clear();
        w = { epoch, count: 0 };
        windows.set(key, w);
      }
      if (w.count >= limit) return { success: false };
      w.count++;
      return { success: true };
    },
  };
}

export function authRateLimit(options: AuthRateLimitOptions): MiddlewareHandler<EdgeEnv> {
  const now = options.now ?? Date.now;
  const periodMs = (options.periodSeconds ?? 60) * 1000;
  const maxBlocked = options.maxBlocked ?? 10_000;
  const log = options.log;
  const fallback = memoryRateLimiter(options.fallbackLimit ?? 30, periodMs, now);
  const blocked = new Map<string, number>();

  const limiterFor = (c: Context<EdgeEnv>): RateLimiter =>
    options.limiter ?? c.env?.AUTH_RATE_LIMITER ?? fallback;

  const tooMany = (untilMs: number) => {
    const seconds = Math.max(1, Math.ceil((untilMs - now()) / 1000));
    return new Response('too many failed authentication attempts, retry later\n', {
      status: 429,
      headers: { 'Retry-After': String(seconds), 'Content-Type': CONTENT_TYPE.text },
    });
  };

  const block = (key: string, until: number) => {
    if (blocked.size >= maxBlocked) {
      const t = now();
      for (const [k, u] of blocked) if (u <= t) blocked.delete(k);
      // Still full: drop the oldest entries (Map keeps insertion order).
      for (const k of blocked.keys()) {
        if (blocked.size < maxBlocked) break;
        blocked.delete(k);
      }
    }
    blocked.delete(key);
    blocked.set(key, until);
  };

  return async function authRateLimitMiddleware(c, next) {
    if (options.publicPaths.has(c.req.path)) return next();
    const key = clientKey(c.req.header('CF-Connecting-IP'));
    const until = blocked.get(key);
    if (until !== undefined) {
      if (until > now()) {
        c.set('authFailure', 'rate limited');
        return tooMany(until);
      }
      blocked.delete(key);
    }
    await next();
    // 401s from the auth middleware, and the OIDC exchange's 401/403 refusals: each sets authFailure.
    if ((c.res.status !== 401 && c.res.status !== 403) || !c.get('authFailure')) return;
    let outcome: { success: boolean };
    try {
      outcome = await limiterFor(c).limit({ key: `auth-fail:${key}` });
    } catch (err) {
      // A broken limiter must not lock everyone out: keep the 401.
      log({ msg: 'auth rate limiter failed', error: String(err) });
      return;
    }
    if (outcome.success) return;
    const blockUntil = now() + periodMs;
    block(key, blockUntil);
    log({ msg: 'too many failed authentication attempts; client blocked', client: key, seconds: periodMs / 1000 });
    c.set('authFailure', `${c.get('authFailure')}; rate limited`);
    c.res = undefined as unknown as Response;
    c.res = tooMany(blockUntil);
  };
}
