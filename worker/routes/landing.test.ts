/**
 * The landing page through the edge app (app.request, origin injected as a
 * function). The same page is fetched from workerd in test/e2e/tokens-edge.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { edgeKit, hang, TEST_SECRET as SECRET } from '../test-kit.ts';
import type { Env } from '../env.ts';
import { renderLanding } from './landing.ts';

const KEY = 'cache.example.org-1:' + Buffer.alloc(32, 7).toString('base64');
const KEY2 = 'cache.example.org-2:' + Buffer.alloc(32, 9).toString('base64');

function setup(origin: (req: Request) => Promise<Response>, env: Partial<Env> = {}) {
  return edgeKit({ env, origin });
}

const keyOrigin = (body: string, status = 200) => async () => new Response(body, { status, headers: { 'content-type': 'text/plain' } });

describe('GET / landing page', () => {
  it('shows the public key and client configuration without a token, fetched with the edge secret', async () => {
    const { app, seen, logs } = setup(keyOrigin(KEY + '\n'));
    const res = await app.request('https://cache.example.org/');
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(res.headers.get('cache-control')).toBe('private, no-store');
    expect(res.headers.get('content-security-policy')).toContain("default-src 'none'");
    const html = await res.text();
    expect(html).toContain(`<pre id="public-key">${KEY}</pre>`);
    expect(html).toContain(
      `<pre id="nix-conf">extra-substituters = https://cache.example.org\nextra-trusted-public-keys = ${KEY}\nnetrc-file = /etc/nix/netrc</pre>`,
    );
    expect(html).toContain('<pre id="netrc">machine cache.example.org login &lt;user&gt; password &lt;token&gt;</pre>');
    expect(html).not.toContain(SECRET);
    // The origin was asked for the key, with the edge secret, uncached.
    expect(seen).toHaveLength(1);
    expect(seen[0]!.url).toBe('http://origin.test/v1/public-key');
    expect(seen[0]!.headers.get('x-eris-edge-secret')).toBe(SECRET);
    expect(seen[0]!.cache).toBe('no-store');
    expect(logs.at(-1)).toMatchObject({ path: '/', status: 200, user: null });
  });

  it('lists every key when the origin signs with several (rotation)', async () => {
    const { app } = setup(keyOrigin(`${KEY}\n${KEY2}\n`));
    const html = await (await app.request('https://cache.example.org/')).text();
    expect(html).toContain(`extra-trusted-public-keys = ${KEY} ${KEY2}\n`);
  });

  it('uses the host and port the client used, and leaves netrc out when anonymous reads are allowed', async () => {
    const { app } = setup(keyOrigin(KEY), { ALLOW_ANONYMOUS: 'true' });
    const html = await (await app.request('http://127.0.0.1:8787/')).text();
    expect(html).toContain('extra-substituters = http://127.0.0.1:8787\n');
    expect(html).not.toContain('netrc');
    expect(html).toContain('Anyone may read it.');
  });

  it('still renders, says the key is unavailable and answers 503 when the origin is down, refuses or talks nonsense', async () => {
    const cases: (() => Promise<Response>)[] = [
      async () => {
        throw new TypeError('connect ECONNREFUSED');
      },
      keyOrigin('forbidden', 403),
      keyOrigin('oops', 500),
      keyOrigin('<script>alert(1)</script>'),
      keyOrigin(''),
    ];
    const logged: string[] = [];
    for (const origin of cases) {
      const edge = setup(origin);
      const res = await edge.app.request('https://cache.example.org/');
      expect(res.status).toBe(503);
      expect(res.headers.get('cache-control')).toBe('private, no-store');
      const html = await res.text();
      expect(html).toContain('The public key is unavailable right now');
      expect(html).toContain('extra-trusted-public-keys = &lt;public key unavailable&gt;');
      expect(html).toContain('machine cache.example.org login');
      expect(html).not.toContain('<script>');
      logged.push(...edge.messages().map((l) => JSON.stringify(l)));
    }
    // Each failure is logged once, saying why, without the edge secret.
    expect(logged).toHaveLength(cases.length);
    expect(logged[0]).toContain('ECONNREFUSED');
    expect(logged[1]).toContain('"status":403');
    for (const l of logged) expect(l).not.toContain(SECRET);
  });

  it('gives up on a stalled origin within its budget', async () => {
    const { app } = setup(hang, { ORIGIN_TIMEOUT_MS: '200' });
    const started = Date.now();
    expect((await app.request('https://cache.example.org/')).status).toBe(503);
    expect(Date.now() - started).toBeLessThan(3000);
  });

  it('answers HEAD without a body, and other paths still need a token', async () => {
    const { app } = setup(keyOrigin(KEY));
    const head = await app.request('https://cache.example.org/', { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(await head.text()).toBe('');
    expect((await app.request('https://cache.example.org/nix-cache-info')).status).toBe(401);
    expect((await app.request('https://cache.example.org/index.html')).status).toBe(401);
  });

  it('escapes everything it puts into HTML', async () => {
    const html = await renderLanding({ origin: `https://"><b>'&`, hostname: '"><i>x', keys: ['k-1:<script>'], allowAnonymous: false });
    expect(html).not.toMatch(/<(b|i|script)>/);
    expect(html).toContain('k-1:&lt;script&gt;');
    expect(html).toContain('extra-substituters = https://&quot;&gt;&lt;b&gt;&#39;&amp;\n');
    expect(html).toContain('<title>eris: Nix binary cache at &quot;&gt;&lt;i&gt;x</title>');
  });

  it('does not wait on the circuit breaker, nor count towards it', async () => {
    const { app, seen } = setup(async () => {
      throw new TypeError('connect ECONNREFUSED');
    }, { BREAKER_THRESHOLD: '1' });
    for (let i = 0; i < 3; i++) expect((await app.request('https://cache.example.org/')).status).toBe(503);
    expect(seen).toHaveLength(3);
  });
});
