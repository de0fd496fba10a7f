/**
 * `GET /` and `GET /<cache>/` at the edge: a small HTML page, no token needed
 * for `/`, with the cache's public keys and the client configuration to copy
 * (nix.conf and netrc lines, with placeholders — never a secret). The keys are
 * every origin's, asked at once on each request (origin-keys.ts): `/v1/public-key`
 * of each for `/`, each origin's cache list for a named cache. When an origin
 * did not answer, the page still renders with the keys it has, says keys may
 * be missing, and answers 503 + Retry-After like every key listing. Also
 * `GET /v1/public-key` with several origins. Everything interpolated into the
 * HTML is escaped by hono/html.
 */
import type { Context } from 'hono';
import { html } from 'hono/html';
import type { EdgeEnv } from '../types.ts';
import { gatherCaches, gatherPublicKeys, incompleteHeaders, incompleteResponse, type GatherOptions, type MissingOrigin } from '../origin-keys.ts';
import { renderPage } from './page.ts';
import { DEFAULT_NETRC_PATH, NETRC_NOTE, renderNetrcLine, renderNixConf } from '../../shared/client-config.ts';

export interface LandingOptions extends GatherOptions {
  allowAnonymous: boolean;
}

/** GET /v1/public-key with several origins: every key every origin gave, one a line; 503 + Retry-After when one did not answer. */
export function publicKeyList(options: GatherOptions) {
  return async function publicKey(c: Context<EdgeEnv>): Promise<Response> {
    const { keys, missing } = await gatherPublicKeys(options);
    if (missing.length) return incompleteResponse('public key list', missing);
    return c.text(keys.join('\n') + '\n', 200);
  };
}

const STYLE = `
body { font-family: system-ui, sans-serif; max-width: 46rem; margin: 2rem auto; padding: 0 1rem; line-height: 1.5; color: #222; }
pre { background: #f4f4f4; padding: .75rem 1rem; overflow-x: auto; border-radius: 4px; }
code, pre { font-family: ui-monospace, monospace; font-size: .9rem; }`;

export async function renderLanding(o: { origin: string; hostname: string; keys: string[] | null; allowAnonymous: boolean; cache?: string; complete?: boolean }): Promise<string> {
  // A named cache's substituter URL is its prefix: Nix appends /nix-cache-info and resolves nar/… under it.
  const substituter = o.cache ? `${o.origin}/${o.cache}` : o.origin;
  const title = o.cache ? `${o.cache} at ${o.hostname}` : `at ${o.hostname}`;
  // The same lines as GET /v1/cache-config and `eris client-config` (shared/client-config.ts).
  const nixConf = renderNixConf([{ url: substituter, publicKeys: o.keys ?? ['<public key unavailable>'] }], o.allowAnonymous ? null : DEFAULT_NETRC_PATH).trimEnd();
  const netrc = renderNetrcLine(o.hostname, '<user>');
  return renderPage({ title: `eris: Nix binary cache ${title}`, style: STYLE, body: html`<h1>Nix binary cache ${title}</h1>
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
<p>${NETRC_NOTE}</p>`}` });
}

export function landingPage(options: LandingOptions) {
  return async function landing(c: Context<EdgeEnv>): Promise<Response> {
    const url = new URL(c.req.url);
    const cache = c.req.param('cache');
    let keys: string[];
    let missing: MissingOrigin[];
    if (cache === undefined) ({ keys, missing } = await gatherPublicKeys(options));
    else {
      // A named cache (the token was granted it): its keys from every origin's cache list.
      const merged = await gatherCaches(options);
      const entry = merged.caches.find((x) => x.name === cache);
      // Unknown to every origin that answered: 404 only when all answered (it may live on a missing one).
      if (!entry && !merged.missing.length) return c.text('no such cache\n', 404);
      keys = entry?.publicKeys ?? [];
      missing = merged.missing;
    }
    const page = await renderLanding({ origin: url.origin, hostname: url.hostname, keys: keys.length ? keys : null, allowAnonymous: options.allowAnonymous, cache, complete: !missing.length });
    // 503 so monitoring notices when any origin's key may be missing (the rule of every key listing, origin-keys.ts).
    return c.body(page, missing.length ? 503 : 200, {
      'Content-Type': 'text/html; charset=utf-8',
      'Content-Security-Policy': "default-src 'none'; style-src 'unsafe-inline'",
      'X-Content-Type-Options': 'nosniff',
      'Referrer-Policy': 'no-referrer',
      ...(missing.length ? incompleteHeaders(missing) : {}),
    });
  };
}
