/**
 * CI pushes with no stored secret, end to end: a local OIDC issuer on
 * loopback (discovery document + JWKS, keys made here, and a stand-in for
 * GitHub's token endpoint) signs the job's identity token; `wrangler dev`
 * checks it against OIDC_TRUST and hands out a short-lived eris token, with
 * which a real Nix 2.8 `nix copy --to …/ci` pushes into `eris serve`'s store.
 * No token is stored anywhere: the stack has none in KV. Every forged,
 * expired or unmatched identity is refused with one line and no token.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { createTestIssuer, type TestIssuer } from '../../worker/oidc/test-issuer.ts';
import { exchangeOidcToken, OidcExchangeError } from '../../origin/push/client/oidc.ts';
import type { ExchangeResponse } from '../../shared/oidc-exchange.ts';
import { NIX_FLAGS, nixEnv, runNix } from '../helpers/nix.ts';
import { ERIS_CLI, eris, freePort } from '../helpers/processes.ts';
import { useStack } from '../helpers/stack.ts';

const fixture = inject('fixture');
const PUSH_NIX = new URL('../fixtures/push.nix', import.meta.url).pathname;
const DOCS = new URL('../../docs/oidc.md', import.meta.url).pathname;
const SECRET = 'oidc-e2e-token-secret-' + randomBytes(16).toString('hex');
const SUBJECT = 'github:acme/app@refs/heads/main';

/** A command to its end, without blocking this process (which serves the issuer the command asks). */
function run(cmd: string, args: string[], o: { env: NodeJS.ProcessEnv; cwd?: string; timeoutMs?: number }): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { cwd: o.cwd, env: o.env, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), o.timeoutMs ?? 120_000);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stderr });
    });
  });
}

/** `eris push ARGS…` as a CI job runs it: its own process, no netrc at hand. */
const erisPush = (args: string[], env: Record<string, string>) => run(process.execPath, [...ERIS_CLI, 'push', ...args], { env: nixEnv({ HOME: '/nonexistent', ...env }) });

function build(attr: string, salt: string): string {
  return execFileSync('nix-build', [PUSH_NIX, '-A', attr, '--argstr', 'salt', salt, '--no-out-link', '--option', 'sandbox', 'false', '--option', 'substituters', ''],
    { env: nixEnv(), encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
}

describe.skipIf(!fixture)('OIDC exchange through wrangler dev with a loopback issuer, and a real nix copy push', () => {
  let issuer: TestIssuer;
  let server: Server;
  let gone: string; // an issuer nobody answers for
  let edgePort: number;
  const ghRequestToken = randomBytes(16).toString('hex');
  const salt = randomBytes(6).toString('hex');
  let root: string;

  beforeAll(async () => {
    server = createServer(async (req, res) => {
      const url = new URL(req.url!, 'http://x');
      // A stand-in for GitHub's ACTIONS_ID_TOKEN_REQUEST_URL: the runner's bearer in, a JWT for the asked audience out.
      if (url.pathname === '/gh/token') {
        if (req.headers.authorization !== `Bearer ${ghRequestToken}`) return res.writeHead(401).end();
        const jwt = await issuer.sign(issuer.claims({ aud: url.searchParams.get('audience') }));
        return res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ count: jwt.length, value: jwt }));
      }
      const answer = await issuer.handle(new Request(`${issuer.url}${req.url}`));
      res.writeHead(answer.status, { 'content-type': answer.headers.get('content-type') ?? 'text/plain' }).end(Buffer.from(await answer.arrayBuffer()));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    issuer = await createTestIssuer(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
    gone = `http://127.0.0.1:${await freePort()}`;
    edgePort = await freePort();
  });
  afterAll(() => new Promise<void>((r) => (server ? server.close(() => r()) : r())));

  const audience = () => `http://127.0.0.1:${edgePort}`;
  const s = useStack(() => ({
    user: null, // no stored token at all
    edgePort,
    root(dir) {
      root = join(dir, 'root');
      const dep = fixture!.closure.find((p) => p.endsWith('-eris-dep'))!;
      execFileSync('nix', [...NIX_FLAGS, 'copy', '--no-check-sigs', '--to', root, dep], { env: nixEnv() });
      writeFileSync(join(dir, 'eris.toml'), `[[cache]]\nname = "default"\npublish = "all"\n\n[[cache]]\nname = "ci"\npublish = "roots"\n`);
      return root;
    },
    originArgs: (dir) => ['--config', join(dir, 'eris.toml'), '--push-dir', join(dir, 'push'), '--state-dir', join(dir, 'state')],
    vars: {
      OIDC_TOKEN_SECRET: SECRET,
      OIDC_TRUST: JSON.stringify({
        issuers: [{ name: 'github', url: issuer.url, audience: audience() }, { name: 'gone', url: gone, audience: audience() }],
        rules: [
          { name: 'app-main', issuer: 'github', claims: { repository_id: 123456789, repository_owner_id: 4242, ref: 'refs/heads/main' }, caches: ['ci'], scopes: ['write'], minutes: 15 },
          { name: 'app-short', issuer: 'github', claims: { repository_id: 123456789, ref: 'refs/heads/short' }, caches: ['ci'], scopes: ['read'], minutes: 1 },
          { name: 'app-prs', issuer: 'github', claims: { repository_id: 123456789, ref: 'refs/pull/*/merge' }, caches: ['ci'], scopes: ['read'], minutes: 10 },
          { name: 'gone-main', issuer: 'gone', claims: { repository_id: 123456789 }, caches: ['ci'], scopes: ['write'] },
        ],
      }),
    },
  }));

  const claims = (o: Record<string, unknown> = {}) => issuer.claims({ aud: audience(), ...o });
  const exchange = (jwt: string, query = '') =>
    fetch(`${s.edge.url}/v1/oidc/token${query}`, { method: 'POST', headers: { Authorization: `Bearer ${jwt}` }, signal: AbortSignal.timeout(30_000) });
  const withToken = (path: string, token: string, init: RequestInit = {}) =>
    fetch(s.edge.url + path, { ...init, headers: { Authorization: 'Basic ' + btoa(`oidc:${token}`) }, signal: AbortSignal.timeout(30_000) });
  const validInOrigin = (p: string) => runNix(['path-info', '--store', root, p]).then((r) => r.code === 0);
  const push = (paths: string[], netrc: string) =>
    runNix(['copy', '--to', `${s.edge.url}/ci`, ...paths, '--option', 'connect-timeout', '5', '--option', 'download-attempts', '1', '--option', 'netrc-file', netrc], { timeoutMs: 120_000 });

  // Taken first, checked last: a token under a one-minute rule.
  let short: { token: string; at: number };
  beforeAll(async () => {
    const res = await exchange(await issuer.sign(claims({ ref: 'refs/heads/short' })));
    expect(res.status).toBe(200);
    short = { token: ((await res.json()) as ExchangeResponse).token, at: Date.now() };
    expect((await withToken('/ci/nix-cache-info', short.token)).status).toBe(200);
  });

  it('the documented curl lines (GitHub\'s token endpoint, then the exchange) write a netrc with which nix copy pushes to ci as the subject', async () => {
    const docs = readFileSync(DOCS, 'utf8');
    const block = /### The exchange with curl \(GitHub Actions\)\n\n```sh\n([\s\S]*?)```/.exec(docs)?.[1];
    expect(block).toMatch(/^JWT=.*\ncurl .*\nnix copy .*\n$/);
    const path = build('shared', salt);
    const work = mkdtempSync(join(s.dir, 'runner-'));
    symlinkSync(path, join(work, 'result'));
    const r = await run('sh', ['-eu', '-c', block!], {
      cwd: work,
      env: nixEnv({
        NIX_CONFIG: 'substituters =\nsandbox = false\nexperimental-features = nix-command\nconnect-timeout = 5\ndownload-attempts = 1',
        XDG_CACHE_HOME: join(work, 'cache'),
        ERIS_URL: s.edge.url,
        RUNNER_TEMP: work,
        ACTIONS_ID_TOKEN_REQUEST_URL: `${issuer.url}/gh/token?api-version=2.0`,
        ACTIONS_ID_TOKEN_REQUEST_TOKEN: ghRequestToken,
      }),
    });
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: expect.not.stringMatching(/error/) });
    expect(readFileSync(join(work, 'eris-netrc'), 'utf8')).toMatch(/^machine 127\.0\.0\.1 login oidc password eris_oidc\.\S+\n$/);
    expect(await validInOrigin(path)).toBe(true);

    // The pushes are the subject's, in the origin's usage and the edge's request log.
    let usage: Record<string, unknown> | undefined;
    for (let i = 0; i < 30 && !usage?.pushes; i++) {
      await new Promise((res) => setTimeout(res, 200));
      usage = (JSON.parse(eris(['usage', '--json', '--state-dir', join(s.dir, 'state'), '--user', SUBJECT]).stdout || '{}').users ?? [])[0];
    }
    expect(usage).toMatchObject({ user: SUBJECT, pushes: 1 });
    expect(s.edge.output()).toMatch(new RegExp(`"method":"PUT","path":"/ci/[0-9a-z]{32}\\.narinfo","status":200,"user":"${SUBJECT}"`));
    expect(s.edge.output()).toContain('"msg":"oidc token issued","user":"github:acme/app@refs/heads/main"');
    expect(s.edge.output()).not.toContain('eris_oidc.');
  });

  it('exchangeOidcToken() gets the token from GitHub\'s variables, or from GitLab\'s id_tokens variable', async () => {
    const github = await exchangeOidcToken({ edgeUrl: s.edge.url, env: { ACTIONS_ID_TOKEN_REQUEST_URL: `${issuer.url}/gh/token?api-version=2.0`, ACTIONS_ID_TOKEN_REQUEST_TOKEN: ghRequestToken } });
    expect(github).toMatchObject({ login: 'oidc', user: SUBJECT, caches: ['ci'], scopes: ['read', 'write'] });
    expect((await withToken('/ci/nix-cache-info', github.token)).status).toBe(200);
    const gitlab = await exchangeOidcToken({ edgeUrl: s.edge.url, env: { ERIS_OIDC_TOKEN: await issuer.sign(claims({ ref: 'refs/pull/9/merge' }), { key: issuer.ec }) } });
    expect(gitlab).toMatchObject({ user: 'github:acme/app@refs/pull/9/merge', scopes: ['read'] });
    await expect(exchangeOidcToken({ edgeUrl: s.edge.url, env: { ERIS_OIDC_TOKEN: await issuer.sign(claims({ repository_id: '1' })) } }))
      .rejects.toThrow(new OidcExchangeError('the edge refused the OIDC exchange: HTTP 403: oidc token refused: no trust rule matches this token'));
    await expect(exchangeOidcToken({ edgeUrl: s.edge.url, env: {} })).rejects.toThrow(/^no CI identity token: in GitHub Actions give the job "permissions: id-token: write"/);
  });

  it('eris push --oidc exchanges the job\'s identity itself and pushes; under a read-only rule it fails and imports nothing', async () => {
    const github = { ERIS_URL: s.edge.url, ACTIONS_ID_TOKEN_REQUEST_URL: `${issuer.url}/gh/token?api-version=2.0`, ACTIONS_ID_TOKEN_REQUEST_TOKEN: ghRequestToken };
    const path = build('b', salt + '-eris-push');
    const r = await erisPush(['--oidc', '--cache', 'ci', path], github);
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: expect.stringContaining(`eris push: OIDC token for ${SUBJECT} (caches ci; read,write; until `) });
    expect(await validInOrigin(path)).toBe(true);

    const pr = build('b', salt + '-eris-push-pr');
    const gitlab = { ERIS_URL: s.edge.url, ERIS_OIDC_TOKEN: await issuer.sign(claims({ ref: 'refs/pull/5/merge' })) };
    const denied = await erisPush(['--oidc', '--cache', 'ci', '--retry-seconds', '5', pr], gitlab);
    expect(denied.code).toBe(1);
    expect(denied.stderr).toMatch(/401/);
    expect(await validInOrigin(pr)).toBe(false);

    const none = await erisPush(['--oidc', '--cache', 'ci', pr], { ERIS_URL: s.edge.url });
    expect({ code: none.code, stderr: none.stderr }).toEqual({ code: 1, stderr: expect.stringMatching(/^eris: --oidc: no CI identity token: in GitHub Actions give the job "permissions: id-token: write"/) });
  });

  it('a read-only rule\'s token reads ci but cannot push: the push fails and nothing is imported', async () => {
    const res = await exchange(await issuer.sign(claims({ ref: 'refs/pull/3/merge' })), '?format=netrc');
    expect(res.status).toBe(200);
    const netrc = join(s.dir, 'pr-netrc');
    writeFileSync(netrc, await res.text());
    const token = readFileSync(netrc, 'utf8').trim().split(' ').pop()!;
    expect((await withToken('/ci/nix-cache-info', token)).status).toBe(200);
    const path = build('a', salt + '-pr');
    const r = await push([path], netrc);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/\b401\b/);
    expect(await validInOrigin(path)).toBe(false);
  });

  it('refuses forged, expired, unmatched and unverifiable identities with one line, no token, no origin request', async () => {
    const unpublished = await issuer.newKey('rsa-unpublished');
    const cases: [string, () => Promise<string>, number, string][] = [
      ['wrong repository', () => issuer.sign(claims({ repository: 'evil/app', repository_id: '666' })), 403, 'no trust rule matches this token'],
      ['wrong audience', () => issuer.sign(claims({ aud: 'https://elsewhere.example' })), 401, 'wrong audience'],
      ['expired', () => issuer.sign(claims({ exp: Math.floor(Date.now() / 1000) - 120 })), 401, 'token expired'],
      ['not yet valid', () => issuer.sign(claims({ nbf: Math.floor(Date.now() / 1000) + 600 })), 401, 'token not yet valid (nbf)'],
      ['wrong issuer', () => issuer.sign(claims({ iss: 'https://token.actions.githubusercontent.com' })), 401, 'unknown issuer'],
      ['unknown kid', () => issuer.sign(claims(), { key: unpublished }), 401, 'unknown key id (kid)'],
      ['alg none', async () => {
        const t = await issuer.sign(claims(), { header: { alg: 'none' } });
        return t.slice(0, t.lastIndexOf('.') + 1);
      }, 401, 'unsupported alg "none" (only RS256, ES256)'],
      ['HS256 signed with the public key', () => issuer.hs256WithPublicKey(claims()), 401, 'unsupported alg "HS256" (only RS256, ES256)'],
      ['tampered payload', async () => {
        const [h, , sig] = (await issuer.sign(claims({ ref: 'refs/pull/1/merge' }))).split('.');
        const p = Buffer.from(JSON.stringify(claims())).toString('base64url');
        return `${h}.${p}.${sig}`;
      }, 401, 'bad signature'],
      ['unreachable JWKS', () => issuer.sign(claims({ iss: gone })), 503, "the issuer's keys cannot be fetched; retry later"],
    ];
    const issued = () => s.edge.output().match(/"msg":"oidc token issued"/g)?.length ?? 0;
    await new Promise((r) => setTimeout(r, 300)); // let wrangler flush its output
    const before = issued();
    for (const [name, make, status, check] of cases) {
      const res = await exchange(await make());
      const body = await res.text();
      expect({ name, status: res.status, body }).toEqual({ name, status, body: `oidc token refused: ${check}\n` });
      expect(res.headers.get('cache-control')).toBe('private, no-store');
    }
    await new Promise((r) => setTimeout(r, 300)); // let wrangler flush its output
    const out = s.edge.output();
    for (const [, , , check] of cases) expect(out).toContain(`"auth":${JSON.stringify(`oidc: ${check}`)}`);
    expect(issued()).toBe(before); // none of them issued a token
  });

  it('the token from the one-minute rule stops working at its expiry, with the same 401 as a bad token', async () => {
    const badRes = await withToken('/ci/nix-cache-info', 'eris_oidc.e30.AAAA');
    const bad = { status: badRes.status, body: await badRes.text(), www: badRes.headers.get('www-authenticate') };
    const wait = short.at + 61_000 - Date.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    const expired = await withToken('/ci/nix-cache-info', short.token);
    expect({ status: expired.status, body: await expired.text(), www: expired.headers.get('www-authenticate') })
      .toEqual({ ...bad, status: 401 });
  }, 120_000);
});
