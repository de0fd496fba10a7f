/**
 * `GET /` at the edge: a small HTML page, no token needed, with the cache's
 * public key and the client configuration to copy (nix.conf and netrc lines,
 * with placeholders — never a secret). The key is fetched from the origin's
 * /v1/public-key on each request through the origin clients — every origin
 * at once, since clients must trust each origin's key (edge secret, no-store,
 * a budget; not through the breakers, so the page neither waits on nor
 * counts towards them). A named cache's keys come from the cache list of
 * the first origin that answers. When the origin cannot give it, the page still
 * renders, says the key is unavailable, and answers 503 so monitoring notices.
 * Everything interpolated into the HTML is escaped by hono/html.
 */
import type { Context } from 'hono';
import { html } from 'hono/html';
import type { EdgeEnv } from '../types.ts';
import type { OriginClient, OriginSender } from '../origin-client.ts';
import type { Log } from '../log.ts';
import { parsePublicKey } from '../../shared/keys.ts';
import { fetchCaches } from './caches.ts';
import { DEFAULT_NETRC_PATH, NETRC_NOTE, renderNetrcLine, renderNixConf } from '../../shared/client-config.ts';

export interface LandingOptions {
  /** Every origin's keys are listed (clients must trust all of them). */
  origins: OriginClient[];
  /** For the cache list: whichever origin answers first. */
  origin: OriginSender;
  /** Budget for the origin's answer; capped at 5 s so the page stays quick. */
  timeoutMs: number;
  allowAnonymous: boolean;
  log: Log;
}

/** One origin's key lines, or null (and a log line saying why) when they cannot be had in time. */
async function originKeys(origin: OriginClient, o: Pick<LandingOptions, 'timeoutMs' | 'log'>): Promise<string[] | null> {
  const result = await origin.send({ path: '/v1/public-key', timeoutMs: Math.min(o.timeoutMs, 5000), bypassBreaker: true });
  // Transport failures and refusals are logged by the origin client.
  if (result.kind !== 'answer') return null;
  const res = result.response;
  if (res.status !== 200) {
    await res.body?.cancel();
    o.log({ msg: 'landing page: origin did not give the public key', origin: origin.id, status: res.status });
    return null;
  }
  try {
    const lines = (await res.text()).split('\n').map((l) => l.trim()).filter(Boolean);
    if (!lines.length) throw new Error('the origin sent no key');
    for (const l of lines) parsePublicKey(l); // throws on anything that is not NAME:BASE64 of 32 bytes
    return lines;
  } catch (err) {
    o.log({ msg: 'landing page: public key unavailable', origin: origin.id, error: String(err) });
    return null;
  }
}

/** Every origin's keys, asked at once, without repeats; `complete` when every origin gave its keys. */
export async function publicKeys(o: Pick<LandingOptions, 'origins' | 'timeoutMs' | 'log'>): Promise<{ keys: string[] | null; complete: boolean }> {
  const each = await Promise.all(o.origins.map((origin) => originKeys(origin, o)));
  const keys = [...new Set(each.flatMap((k) => k ?? []))];
  return { keys: keys.length ? keys : null, complete: each.every((k) => k !== null) };
}

/** GET /v1/public-key with several origins: every key any origin gave, one a line; 503 when none answered. */
export function publicKeyList(options: Pick<LandingOptions, 'origins' | 'timeoutMs' | 'log'>) {
  return async function publicKey(c: Context<EdgeEnv>): Promise<Response> {
    const { keys } = await publicKeys(options);
    if (!keys) return c.text('public key unavailable: no origin answered\n', 503, { 'Retry-After': '5' });
    return c.text(keys.join('\n') + '\n', 200);
  };
}

export async function renderLanding(o: { origin: string; hostname: string; keys: string[] | null; allowAnonymous: boolean; cache?: string; complete?: boolean }): Promise<string> {
  // A named cache's substituter URL is its prefix: Nix appends /nix-cache-info and resolves nar/… under it.
  const substituter = o.cache ? `${o.origin}/${o.cache}` : o.origin;
  const title = o.cache ? `${o.cache} at ${o.hostname}` : `at ${o.hostname}`;
  // The same lines as GET /v1/cache-config and `eris client-config` (shared/client-config.ts).
  const nixConf = renderNixConf([{ url: substituter, publicKeys: o.keys ?? ['<public key unavailable>'] }], o.allowAnonymous ? null : DEFAULT_NETRC_PATH).trimEnd();
  const netrc = renderNetrcLine(o.hostname, '<user>');
  const page = html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>eris: Nix binary cache ${title}</title>
<style>
body { font-family: system-ui, sans-serif; max-width: 46rem; margin: 2rem auto; padding: 0 1rem; line-height: 1.5; color: #222; }
pre { background: #f4f4f4; padding: .75rem 1rem; overflow-x: auto; border-radius: 4px; }
code, pre { font-family: ui-monospace, monospace; font-size: .9rem; }
.warn { background: #fff3cd; padding: .5rem 1rem; border-radius: 4px; }
</style>
</head>
<body>
<h1>Nix binary cache ${title}</h1>
<p>A private Nix binary cache served by eris. ${o.allowAnonymous
    ? 'Anyone may read it.'
    : html`Reading it takes a token: ask the cache’s administrator (who makes one with <code>eris token add USER</code>).`}</p>
<h2>Public key</h2>
${o.keys
    ? html`<pre id="public-key">${o.keys.join('\n')}</pre>${o.complete === false ? html`
<p class="warn" id="keys-incomplete">Some of the cache’s origins did not answer: their keys may be missing from this list.</p>` : ''}`
    : html`<p class="warn" id="public-key">The public key is unavailable right now: the cache’s origin did not answer. Try again later, or ask the administrator for it.</p>`}
<h2>Client configuration</h2>
<p>In <code>/etc/nix/nix.conf</code> (multi-user Nix: restart <code>nix-daemon</code> afterwards):</p>
<pre id="nix-conf">${nixConf}</pre>
<p>The <code>extra-</code> settings add to Nix’s defaults, so <code>cache.nixos.org</code> stays. With a token, <code>eris client-config --edge-url ${o.origin} --token TOKEN</code> (or <code>GET /v1/cache-config</code>) prints these lines for every cache the token may use.</p>
${o.allowAnonymous ? '' : html`<p>In <code>/etc/nix/netrc</code> (mode 0600), with your user name and token:</p>
<pre id="netrc">${netrc}</pre>
<p>${NETRC_NOTE}</p>
`}</body>
</html>
`;
  return (await page).toString();
}

export function landingPage(options: LandingOptions) {
  return async function landing(c: Context<EdgeEnv>): Promise<Response> {
    const url = new URL(c.req.url);
    const cache = c.req.param('cache');
    let keys: string[] | null;
    let complete = true;
    if (cache === undefined) ({ keys, complete } = await publicKeys(options));
    else {
      // A named cache (the token was granted it): its keys come from the origin's cache list.
      const list = await fetchCaches({ ...options, timeoutMs: Math.min(options.timeoutMs, 5000) }, true);
      if (!(list instanceof Response) && !list.some((x) => x.name === cache)) return c.text('no such cache\n', 404);
      keys = list instanceof Response ? null : list.find((x) => x.name === cache)!.publicKeys;
    }
    const page = await renderLanding({ origin: url.origin, hostname: url.hostname, keys, allowAnonymous: options.allowAnonymous, cache, complete });
    // 503 so monitoring notices when any origin's key is missing.
    return c.body(page, keys && complete ? 200 : 503, {
      'Content-Type': 'text/html; charset=utf-8',
      'Content-Security-Policy': "default-src 'none'; style-src 'unsafe-inline'",
      'X-Content-Type-Options': 'nosniff',
      'Referrer-Policy': 'no-referrer',
    });
  };
}
