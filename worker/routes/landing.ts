/**
 * `GET /` at the edge: a small HTML page, no token needed, with the cache's
 * public key and the client configuration to copy (nix.conf and netrc lines,
 * with placeholders — never a secret). The key is fetched from the origin's
 * /v1/public-key on each request, with the edge secret, like the proxy does.
 * When the origin cannot give it, the page still renders, says the key is
 * unavailable, and answers 503 so monitoring notices.
 */
import type { Context } from 'hono';
import type { EdgeEnv } from '../types.ts';
import type { FetchOrigin } from '../proxy.ts';
import { EDGE_SECRET_HEADER } from '../../shared/contract.ts';
import { parsePublicKey } from '../../shared/keys.ts';

export interface LandingOptions {
  originUrl: string;
  edgeSecret: string;
  fetchOrigin: FetchOrigin;
  /** Budget for the origin's answer; capped at 5 s so the page stays quick. */
  timeoutMs: number;
  allowAnonymous: boolean;
}

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (ch) => ESCAPES[ch]!);
}

/** The origin's key lines, or null (and a log line saying why) when they cannot be had in time. */
async function fetchPublicKeys(o: LandingOptions): Promise<string[] | null> {
  const controller = new AbortController();
  let timer: ReturnType<typeof setTimeout> | null = null;
  // Raced rather than trusting the abort signal alone: the page must render even if the origin never answers.
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      const err = new Error('origin timeout');
      controller.abort(err);
      reject(err);
    }, Math.min(o.timeoutMs, 5000));
  });
  const ask = async (): Promise<string[] | null> => {
    const res = await o.fetchOrigin(
      new Request(o.originUrl + '/v1/public-key', {
        headers: { [EDGE_SECRET_HEADER]: o.edgeSecret },
        redirect: 'manual',
        signal: controller.signal,
        cache: 'no-store',
      }),
    );
    if (res.status !== 200) {
      await res.body?.cancel();
      console.error(JSON.stringify({ msg: 'landing page: origin did not give the public key', status: res.status }));
      return null;
    }
    const lines = (await res.text()).split('\n').map((l) => l.trim()).filter(Boolean);
    if (!lines.length) throw new Error('the origin sent no key');
    for (const l of lines) parsePublicKey(l); // throws on anything that is not NAME:BASE64 of 32 bytes
    return lines;
  };
  try {
    return await Promise.race([ask(), timeout]);
  } catch (err) {
    console.error(JSON.stringify({ msg: 'landing page: public key unavailable', error: String(err) }));
    return null;
  } finally {
    clearTimeout(timer);
  }
}

export function renderLanding(o: { origin: string; hostname: string; keys: string[] | null; allowAnonymous: boolean }): string {
  const e = escapeHtml;
  const keyLine = o.keys ? o.keys.join(' ') : '<public key unavailable>';
  const nixConf = [
    `substituters = ${o.origin}`,
    `trusted-public-keys = ${keyLine}`,
    ...(o.allowAnonymous ? [] : ['netrc-file = /etc/nix/netrc']),
  ].join('\n');
  const netrc = `machine ${o.hostname} login <user> password <token>`;
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>eris: Nix binary cache at ${e(o.hostname)}</title>
<style>
body { font-family: system-ui, sans-serif; max-width: 46rem; margin: 2rem auto; padding: 0 1rem; line-height: 1.5; color: #222; }
pre { background: #f4f4f4; padding: .75rem 1rem; overflow-x: auto; border-radius: 4px; }
code, pre { font-family: ui-monospace, monospace; font-size: .9rem; }
.warn { background: #fff3cd; padding: .5rem 1rem; border-radius: 4px; }
</style>
</head>
<body>
<h1>Nix binary cache at ${e(o.hostname)}</h1>
<p>A private Nix binary cache served by eris. ${o.allowAnonymous
    ? 'Anyone may read it.'
    : 'Reading it takes a token: ask the cache’s administrator (who makes one with <code>eris token add USER</code>).'}</p>
<h2>Public key</h2>
${o.keys
    ? `<pre id="public-key">${e(o.keys.join('\n'))}</pre>`
    : '<p class="warn" id="public-key">The public key is unavailable right now: the cache’s origin did not answer. Try again later, or ask the administrator for it.</p>'}
<h2>Client configuration</h2>
<p>In <code>/etc/nix/nix.conf</code> (multi-user Nix: restart <code>nix-daemon</code> afterwards):</p>
<pre id="nix-conf">${e(nixConf)}</pre>
<p>These lines replace Nix’s defaults; to keep <code>cache.nixos.org</code> as well, write <code>extra-substituters</code> and <code>extra-trusted-public-keys</code> instead.</p>
${o.allowAnonymous ? '' : `<p>In <code>/etc/nix/netrc</code> (mode 0600), with your user name and token:</p>
<pre id="netrc">${e(netrc)}</pre>
`}</body>
</html>
`;
}

export function landingPage(options: LandingOptions) {
  return async function landing(c: Context<EdgeEnv>): Promise<Response> {
    const url = new URL(c.req.url);
    const keys = await fetchPublicKeys(options);
    const html = renderLanding({ origin: url.origin, hostname: url.hostname, keys, allowAnonymous: options.allowAnonymous });
    return c.body(html, keys ? 200 : 503, {
      'Content-Type': 'text/html; charset=utf-8',
      'Content-Security-Policy': "default-src 'none'; style-src 'unsafe-inline'",
      'X-Content-Type-Options': 'nosniff',
      'Referrer-Policy': 'no-referrer',
    });
  };
}
