/**
 * `eris token add|list|revoke` against the KV state of a running
 * `wrangler dev`, in one run: a revoked or expired token is refused without
 * restarting the Worker, within the isolate's token cache time
 * (TOKEN_CACHE_SECONDS, 2 s here; local KV has no propagation delay of its own); the edge's log never holds a
 * token; the landing page renders in workerd. The origin is a tiny HTTP
 * server that checks the edge secret, so no Nix is needed.
 */
import { describe, expect, it } from 'vitest';
import { get as httpGet, type ServerResponse } from 'node:http';
import { generateKeyPair } from '../../shared/signing.ts';
import { addToken, tokenDigest } from '../../origin/tokens/cli.ts';
import { edgeLogLines, eris, waitForOutput } from '../helpers/processes.ts';
import { useStack } from '../helpers/stack.ts';

const SECRET = 'tokens-edge-secret-0123456789';
const KEY = generateKeyPair('tokens-edge-1').public;
const TOKEN_CACHE_SECONDS = 2;

describe('token add, list and revoke against wrangler dev', () => {
  const tokens: string[] = []; // every token handed out here, to search the edge's output for
  let alice: string;
  const send = (res: ServerResponse, status: number, type: string, body: string) =>
    res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body) }).end(body);
  const s = useStack(() => ({
    secret: SECRET,
    user: null,
    vars: { TOKEN_CACHE_SECONDS: String(TOKEN_CACHE_SECONDS) },
    origin: {
      handler(req, res) {
        if (req.headers['x-eris-edge-secret'] !== SECRET) return send(res, 403, 'text/plain', 'forbidden\n');
        if (req.url === '/v1/public-key') return send(res, 200, 'text/plain', KEY + '\n');
        if (req.url === '/nix-cache-info') return send(res, 200, 'text/x-nix-cache-info', 'StoreDir: /nix/store\n');
        send(res, 404, 'text/plain', 'not found\n');
      },
    },
  }));

  const where = () => ['--persist-to', s.edge.persistTo];
  /**
   * A GET on a fresh connection each time: between requests this test spends
   * seconds in wrangler CLI calls, and a reused keep-alive socket that wrangler
   * dev closes meanwhile fails the next fetch ("other side closed").
   */
  const get = (path: string, headers: Record<string, string> = {}) =>
    new Promise<Response>((resolve, reject) => {
      const req = httpGet(s.edge.url + path, { headers, agent: false, timeout: 20_000 }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => {
          const h = new Headers();
          for (let i = 0; i < res.rawHeaders.length; i += 2) h.append(res.rawHeaders[i]!, res.rawHeaders[i + 1]!);
          resolve(new Response(Buffer.concat(chunks), { status: res.statusCode!, headers: h }));
        });
      });
      req.on('timeout', () => req.destroy(new Error(`GET ${path}: no answer in 20 s`)));
      req.on('error', reject);
    });
  const basic = (user: string, token: string) => ({ Authorization: 'Basic ' + btoa(`${user}:${token}`) });
  /** The answer once the edge refuses these credentials; fails if that takes longer than the token cache time (+1 s for wrangler dev). */
  async function refusedWithinBound(path: string, headers: Record<string, string>): Promise<Response> {
    const started = Date.now();
    for (;;) {
      const res = await get(path, headers);
      if (res.status !== 200 || Date.now() - started > (TOKEN_CACHE_SECONDS + 1) * 1000) {
        expect(Date.now() - started).toBeLessThanOrEqual((TOKEN_CACHE_SECONDS + 1) * 1000);
        return res;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  it('add prints a token once that the running edge accepts at once; list shows it without the token', async () => {
    const r = eris(['token', 'add', 'alice', ...where()]);
    expect(r.status).toBe(0);
    alice = r.stdout.trim();
    expect(alice).toMatch(/^eris_[A-Za-z0-9_-]{43}$/);
    tokens.push(alice);
    expect(r.stderr).toMatch(/shown once/);

    const ok = await get('/nix-cache-info', basic('alice', alice));
    expect(ok.status).toBe(200);
    expect(await ok.text()).toBe('StoreDir: /nix/store\n');
    expect((await get('/nix-cache-info', { Authorization: `Bearer ${alice}` })).status).toBe(200);
    expect((await get('/nix-cache-info', basic('mallory', alice))).status).toBe(401);

    const list = eris(['token', 'list', ...where()]);
    expect(list.status).toBe(0);
    const id = (await tokenDigest(alice)).slice(0, 12);
    expect(list.stdout).toMatch(new RegExp(`^${id}  alice  read  .* never$`, 'm'));
    expect(list.stdout).not.toContain(alice);
  }, 150_000); // two eris token runs (each a wrangler CLI run: 10-20 s at load 10)

  it('revoke by id prefix: the same request is refused in the same wrangler dev run within the token cache time, and list no longer shows it', async () => {
    const id = (await tokenDigest(alice)).slice(0, 12);
    const unknown = eris(['token', 'revoke', 'ffffffff' === id.slice(0, 8) ? 'eeeeeeee' : 'ffffffff', ...where()]);
    expect(unknown.status).toBe(1);
    expect(unknown.stderr).toMatch(/no token with id/);

    const r = eris(['token', 'revoke', id.slice(0, 8), ...where()]);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout).toBe(`revoked ${id} (alice, read)\n`);

    const res = await refusedWithinBound('/nix-cache-info', basic('alice', alice));
    expect(res.status).toBe(401);
    expect(res.headers.get('cache-control')).toBe('private, no-store');
    expect((await get('/nix-cache-info', { Authorization: `Bearer ${alice}` })).status).toBe(401);
    const list = eris(['token', 'list', '--json', ...where()]);
    expect(list.status).toBe(0);
    expect(JSON.parse(list.stdout || '[]').map((t: { user: string }) => t.user)).not.toContain('alice');
  }, 150_000); // three eris token runs (each a wrangler CLI run), like the next case

  it('revoke --user takes every token of that user; an expired token is refused and listed as expired', async () => {
    const target = { mode: 'local' as const, persistTo: s.edge.persistTo };
    const bob1 = await addToken(target, 'bob', { scopes: ['read'] });
    const bob2 = await addToken(target, 'bob', { scopes: ['read', 'write'], expiresDays: 30 });
    const erin = await addToken(target, 'erin', { expires: '2001-02-03T04:05:06Z' });
    tokens.push(bob1, bob2, erin);
    expect((await get('/nix-cache-info', basic('bob', bob1))).status).toBe(200);
    expect((await get('/nix-cache-info', basic('bob', bob2))).status).toBe(200);
    expect((await get('/nix-cache-info', basic('erin', erin))).status).toBe(401);

    const list = eris(['token', 'list', ...where()]);
    expect(list.stdout).toMatch(new RegExp(`^${(await tokenDigest(erin)).slice(0, 12)}  erin .* 2001-02-03T04:05:06Z \\(expired\\)$`, 'm'));
    expect(list.stdout.match(/^\S+ +bob /gm)).toHaveLength(2);

    const r = eris(['token', 'revoke', '--user', 'bob', ...where()]);
    expect(r.status).toBe(0);
    expect(r.stdout.trim().split('\n')).toHaveLength(2);
    expect((await refusedWithinBound('/nix-cache-info', basic('bob', bob1))).status).toBe(401);
    expect((await refusedWithinBound('/nix-cache-info', basic('bob', bob2))).status).toBe(401);
  }, 150_000); // about eight wrangler CLI runs (KV reads and writes), each a few seconds on a busy 2-core machine

  it('serves the landing page from workerd without a token, with the key from the origin', async () => {
    const res = await get('/');
    expect(res.status).toBe(200);
    expect(res.headers.get('cache-control')).toBe('private, no-store');
    expect(res.headers.get('content-type')).toBe('text/html; charset=utf-8');
    const html = await res.text();
    expect(html).toContain(`<pre id="public-key">${KEY}</pre>`);
    expect(html).toContain(`extra-substituters = ${s.edge.url}\nextra-trusted-public-keys = ${KEY}\nnetrc-file = /etc/nix/netrc`);
    expect(html).toContain('machine 127.0.0.1 login &lt;user&gt; password &lt;token&gt;');
    expect(html).not.toContain(SECRET);
  });

  it('logs one JSON line per request with user, status, bytes and duration, and never a token', async () => {
    // Every earlier line is in the captured output once a last, marked request's line is there.
    await get('/log-flush-marker');
    await waitForOutput(s.edge, /log-flush-marker/, 10_000);
    const out = s.edge.output();
    const lines = edgeLogLines(out);
    expect(lines.find((l) => l.user === 'alice' && l.status === 200 && l.path === '/nix-cache-info')).toMatchObject({
      method: 'GET',
      bytes: 'StoreDir: /nix/store\n'.length,
      ms: expect.any(Number),
    });
    expect(lines.some((l) => l.status === 401 && l.auth === 'unknown token')).toBe(true);
    expect(lines.some((l) => l.status === 401 && l.auth === 'token not valid for this user, scope or time')).toBe(true);
    expect(tokens).toHaveLength(4);
    for (const t of tokens) {
      expect(out).not.toContain(t);
      expect(out).not.toContain(t.slice(5, 25)); // no fragment either
      for (const user of ['alice', 'mallory', 'bob', 'erin']) expect(out).not.toContain(btoa(`${user}:${t}`).slice(0, 40));
    }
    expect(out).not.toContain(SECRET);
  });

  it('still renders the landing page, saying the key is unavailable, when the origin is down (503)', async () => {
    await s.origin.stop();
    const res = await get('/');
    expect(res.status).toBe(503);
    expect(res.headers.get('cache-control')).toBe('private, no-store');
    expect(await res.text()).toContain('The public key is unavailable right now');
  });
});
