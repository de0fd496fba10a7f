/**
 * Several origins behind one edge: who is asked, in what order, and which
 * answer counts. Pure apart from the origin clients it is handed.
 *
 * - Metadata (narinfo, .ls, log, realisations, nix-cache-info): origins are
 *   asked in priority order; when one has not answered within the hedge
 *   delay, the next is asked as well. The first usable answer wins (a 200,
 *   or a 4xx other than 404, which every origin would give alike); a 404 or
 *   a failure moves on to the next at once.
 * - NARs: the narinfo's `URL` names the origin that answered it (a query
 *   parameter, NAR_ORIGIN_PARAM; the URL is not part of the signed
 *   fingerprint), so the NAR goes there first, then to the others in
 *   priority order, one at a time (no hedging: bodies are large). Every
 *   origin serves a NAR URL only for the NarHash it names, so whichever
 *   answers sends the same bytes.
 * - Anything else (uploads): the first origin only; a body is sent once.
 *
 * The verdict: an answer that won is passed on; 404 only when every origin
 * said 404; when one origin failed and the rest said 404, that origin's
 * failure (its 5xx, or the edge's 502/503/504 for it); when several failed,
 * 503 + Retry-After. Never a 404 while an origin that might have the path
 * did not answer — Nix remembers misses.
 */
import type { OriginClient, OriginResult } from './origin-client.ts';

/** Query parameter on a narinfo's NAR URL naming the origin that answered the narinfo. */
export const NAR_ORIGIN_PARAM = 'eris-origin';

export type Verdict = 'win' | 'miss' | 'fail';

export function verdict(r: OriginResult): Verdict {
  if (r.kind !== 'answer') return 'fail';
  const s = r.response.status;
  if (s === 404) return 'miss';
  return s >= 500 ? 'fail' : 'win';
}

export interface Attempt {
  origin: OriginClient;
  result: OriginResult;
  verdict: Verdict;
}

export interface Asked {
  winner?: Attempt;
  /** Every origin asked so far, in the order they were asked (a winner's slower peers may be missing). */
  attempts: Attempt[];
}

const discard = (r: OriginResult) => {
  if (r.kind === 'answer') r.response.body?.cancel().catch(() => {});
};

/**
 * Asks `origins` in turn; with hedgeMs > 0 the next one is also asked when
 * the latest has not answered by then. Resolves at the first win, or when
 * all have answered. Answers that arrive after a win are discarded; `keep`
 * is handed their promises (waitUntil) so their breakers still learn.
 */
export function askInTurn(origins: OriginClient[], ask: (o: OriginClient) => Promise<OriginResult>, opts: { hedgeMs: number; keep?: (p: Promise<unknown>) => void }): Promise<Asked> {
  return new Promise((resolve) => {
    const attempts: Attempt[] = [];
    let next = 0;
    let pending = 0;
    let done = false;
    let hedge: ReturnType<typeof setTimeout> | null = null;
    const finish = (winner?: Attempt) => {
      done = true;
      if (hedge) clearTimeout(hedge);
      resolve({ winner, attempts: [...attempts] });
    };
    const launch = () => {
      if (done || next >= origins.length) return;
      const origin = origins[next++]!;
      pending++;
      if (hedge) clearTimeout(hedge);
      hedge = opts.hedgeMs > 0 && next < origins.length ? setTimeout(launch, opts.hedgeMs) : null;
      const p = ask(origin).then((result) => {
        pending--;
        if (done) return discard(result);
        const a: Attempt = { origin, result, verdict: verdict(result) };
        attempts.push(a);
        if (a.verdict === 'win') return finish(a);
        if (next < origins.length) launch();
        else if (pending === 0) finish();
      });
      opts.keep?.(p);
    };
    if (!origins.length) return finish();
    launch();
  });
}

/** The origins in the order a request tries them: the one a NAR URL names first, then priority order. */
export function inOrder(origins: OriginClient[], preferred: string | null): OriginClient[] {
  const first = preferred ? origins.find((o) => o.id === preferred) : undefined;
  return first ? [first, ...origins.filter((o) => o !== first)] : origins;
}

/** Appends the answering origin to a narinfo's `URL:` line. */
export function routeNarUrl(narinfo: string, originId: string): string {
  return narinfo.replace(/^URL: (.*)$/m, (_, url: string) => `URL: ${url}${url.includes('?') ? '&' : '?'}${NAR_ORIGIN_PARAM}=${encodeURIComponent(originId)}`);
}

/** How one attempt went, for the request log: the status the origin sent, or what happened instead. */
export function outcomeLabel(r: OriginResult): string | number {
  switch (r.kind) {
    case 'answer':
      return r.response.status;
    case 'refused':
    case 'gateway':
      return `${r.kind} ${r.status}`;
    default:
      return r.kind;
  }
}

export interface Provenance {
  /** The origin whose answer was passed on, or null. */
  origin: string | null;
  asked: number;
  tries: { origin: string; result: string | number; ms: number }[];
}

export function provenance(asked: Asked, passedOn: Attempt | undefined): Provenance {
  return {
    origin: passedOn?.origin.id ?? null,
    asked: asked.attempts.length,
    tries: asked.attempts.map((a) => ({ origin: a.origin.id, result: outcomeLabel(a.result), ms: a.result.ms })),
  };
}

/**
 * Which attempt's answer to pass on when nobody won: the first 404 when all
 * said 404, the one failure when exactly one origin failed; otherwise none
 * (several failed: the caller answers 503). The others' bodies are cancelled.
 */
export function chooseWithoutWinner(attempts: Attempt[]): { pass?: Attempt; failed: Attempt[] } {
  const failed = attempts.filter((a) => a.verdict === 'fail');
  const pass = failed.length === 0 ? attempts[0] : failed.length === 1 ? failed[0] : undefined;
  for (const a of attempts) if (a !== pass) discard(a.result);
  return { pass, failed };
}
