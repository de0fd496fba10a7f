/**
 * What clients must trust, from every origin at once: each origin's public
 * keys (`/v1/public-key`) and cache list (`/v1/caches`), merged. With several
 * origins each box may sign with its own key, and a client that misses one
 * box's key rejects every path only that box holds ("lacks a valid
 * signature") — so every answer that lists keys (/v1/public-key, /v1/caches,
 * /v1/cache-config, the landing pages) is built from all origins' answers,
 * never from the first that answered.
 *
 * The rule when an origin did not answer (down, over budget, refused, or
 * talked nonsense): the answer is incomplete, and every key-listing endpoint
 * says so the same way — `503` with `Retry-After` and `X-Eris-Missing-Origins`
 * naming the origins that did not answer (the landing pages still render, with
 * the keys they have and a warning, but with the same 503). A 503 rather than
 * a 200 with a "missing" field: these answers are pasted into nix.conf once
 * and trusted for months; a partial key list that looks like success configures
 * clients that later fail on exactly the paths of the box that was down. A
 * 503 is what `curl -f`, readiness probes and `eris client-config` already
 * treat as "not now", with no field to parse.
 *
 * Origins are asked in parallel, each with a budget capped at 5 s, around the
 * circuit breakers (so these public or rare requests neither wait on nor
 * count towards them; a dark box costs its budget here, not an outage).
 */
import type { OriginClient } from './origin-client.ts';
import type { Log } from './log.ts';
import { parsePublicKey } from '../shared/keys.ts';
import { NO_STORE, CONTENT_TYPE } from '../shared/contract.ts';
import { parseCacheListing, type CacheDisagreement, type CacheEntry } from '../shared/cache-listing.ts';

export type { CacheDisagreement, CacheEntry };


/** An origin that gave no usable answer, and why, for the 503 and the log. */
export interface MissingOrigin {
  origin: string;
  why: string;
}

export interface Gathered<T> {
  /** The usable answers, in the origins' priority order. */
  answers: { origin: string; value: T }[];
  missing: MissingOrigin[];
}


export const MISSING_ORIGINS_HEADER = 'X-Eris-Missing-Origins';
/** How long a client should wait before asking again when an origin did not answer. */
export const INCOMPLETE_RETRY_SECONDS = 5;
/** The longest any key listing waits for an origin. */
const KEY_BUDGET_CAP_MS = 5000;

export interface GatherOptions {
  origins: OriginClient[];
  timeoutMs: number;
  log: Log;
}

/** Asks every origin `path` at once; `parse` turns a 200's body into a value or throws saying why it is unusable. */
async function askEvery<T>(o: GatherOptions, path: string, parse: (text: string) => T): Promise<Gathered<T>> {
  const timeoutMs = Math.min(o.timeoutMs, KEY_BUDGET_CAP_MS);
  const each = await Promise.all(
    o.origins.map(async (origin): Promise<{ origin: string; value: T } | MissingOrigin> => {
      const result = await origin.send({ path, timeoutMs, bypassBreaker: true });
      // Transport failures and refusals are logged by the origin client.
      if (result.kind === 'timeout') return { origin: origin.id, why: `no answer in ${timeoutMs} ms` };
      if (result.kind === 'refused') return { origin: origin.id, why: `refused the edge secret (${result.status})` };
      if (result.kind === 'gateway') return { origin: origin.id, why: `unreachable behind the tunnel (${result.status})` };
      if (result.kind !== 'answer') return { origin: origin.id, why: result.kind };
      const res = result.response;
      if (res.status !== 200) {
        await res.body?.cancel().catch(() => {});
        o.log({ msg: 'origin gave no usable answer', path, origin: origin.id, status: res.status });
        return { origin: origin.id, why: `status ${res.status}` };
      }
      try {
        return { origin: origin.id, value: parse(await res.text()) };
      } catch (err) {
        o.log({ msg: 'origin gave no usable answer', path, origin: origin.id, error: String(err instanceof Error ? err.message : err) });
        return { origin: origin.id, why: 'unusable answer' };
      }
    }),
  );
  const answers: Gathered<T>['answers'] = [];
  const missing: MissingOrigin[] = [];
  for (const e of each) 'value' in e ? answers.push(e) : missing.push(e);
  return { answers, missing };
}

/** Key lines (`NAME:BASE64`, one a line); throws when there is none or one is not a key. */
export function parseKeyLines(text: string): string[] {
  const lines = text.split('\n').map((l) => l.trim()).filter(Boolean);
  if (!lines.length) throw new Error('no key');
  for (const l of lines) parsePublicKey(l); // throws on anything that is not NAME:BASE64 of 32 bytes
  return lines;
}


/** Every key of the default cache, from every origin: origin priority order, then each origin's order, without repeats. */
export async function gatherPublicKeys(o: GatherOptions): Promise<{ keys: string[]; missing: MissingOrigin[] }> {
  const { answers, missing } = await askEvery(o, '/v1/public-key', parseKeyLines);
  return { keys: unionInOrder(answers.map((a) => a.value)), missing };
}

const unionInOrder = (lists: string[][]): string[] => [...new Set(lists.flat())];

/**
 * One cache list from several: each cache once, in the order the origins
 * list them (priority origin first); its priority and default flag from the
 * first origin listing it, its keys the union of every listing origin's keys.
 * Where listing origins disagree on priority or default, a disagreement.
 */
export function mergeCacheLists(answers: { origin: string; value: CacheEntry[] }[]): { caches: CacheEntry[]; disagreements: CacheDisagreement[] } {
  const byName = new Map<string, { entry: CacheEntry; keys: string[][]; priority: Record<string, number>; default: Record<string, boolean> }>();
  for (const { origin, value } of answers) {
    for (const c of value) {
      let m = byName.get(c.name);
      if (!m) byName.set(c.name, (m = { entry: { ...c }, keys: [], priority: {}, default: {} }));
      m.keys.push(c.publicKeys);
      m.priority[origin] ??= c.priority;
      m.default[origin] ??= c.default;
    }
  }
  const caches: CacheEntry[] = [];
  const disagreements: CacheDisagreement[] = [];
  for (const [name, m] of byName) {
    caches.push({ ...m.entry, publicKeys: unionInOrder(m.keys) });
    for (const field of ['priority', 'default'] as const) {
      if (new Set(Object.values(m[field])).size > 1) disagreements.push({ cache: name, field, values: m[field] });
    }
  }
  return { caches, disagreements };
}

/** Every origin's cache list, merged. */
export async function gatherCaches(o: GatherOptions): Promise<{ caches: CacheEntry[]; disagreements: CacheDisagreement[]; missing: MissingOrigin[] }> {
  const { answers, missing } = await askEvery(o, '/v1/caches', (text) => parseCacheListing(text).caches);
  return { ...mergeCacheLists(answers), missing };
}

/** Headers that name the origins that did not answer (on every incomplete answer, the landing pages included). */
export function incompleteHeaders(missing: MissingOrigin[]): Record<string, string> {
  return { 'Retry-After': String(INCOMPLETE_RETRY_SECONDS), [MISSING_ORIGINS_HEADER]: missing.map((m) => m.origin).join(', ') };
}

/** The answer when an origin did not answer: 503, Retry-After, the origins named — never a list that looks complete. */
export function incompleteResponse(what: string, missing: MissingOrigin[]): Response {
  const names = missing.map((m) => `${m.origin} (${m.why})`).join(', ');
  return new Response(`${what} unavailable: ${missing.length === 1 ? 'origin' : 'origins'} ${names} did not answer, so keys may be missing; retry later\n`, {
    status: 503,
    headers: { 'Content-Type': CONTENT_TYPE.text, 'Cache-Control': NO_STORE, ...incompleteHeaders(missing) },
  });
}
