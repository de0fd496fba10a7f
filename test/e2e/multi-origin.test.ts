/**
 * Several origins behind one Worker (issue 13), as users run them: three
 * `eris serve` processes, each over its own chroot store holding part of
 * what is copied (some paths on two), each with its own signing key and edge
 * secret, one `wrangler dev` with ORIGINS, and real `nix copy` through it.
 * Each origin sits behind a small TCP switch so a test can make it hang
 * (accept, never answer) or refuse without touching the others; killing one
 * is a real SIGKILL of its `eris serve`. One stack serves every case here.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { addToken } from '../../origin/tokens/cli.ts';
import { generateKeyPair } from '../../shared/signing.ts';
import { hashOf, NIX_FLAGS, nixEnv, runNix, type NixResult } from '../helpers/nix.ts';
import { edgeLogLines, erisAsync, freePort, startEdge, startOriginCli, type EdgeProc, type OriginProc } from '../helpers/processes.ts';
import { addRandomFile, readChars, openFds, sleep, storeHas, until } from '../helpers/faults.ts';

const fixture = inject('fixture');
const IDS = ['a', 'b', 'c'] as const;
type Id = (typeof IDS)[number];
const BIG = 64 * 1024 * 1024;
const COOLDOWN_MS = 1500;
const BUDGET_MS = 3000;

type Mode = 'pass' | 'hang' | 'refuse';

/** A TCP forwarder in front of an origin: passes bytes, or accepts and never answers, or hangs up at once. */
interface Switch {
  port: number;
  set(mode: Mode): void;
  close(): Promise<void>;
}

async function startSwitch(target: () => number): Promise<Switch> {
  let mode: Mode = 'pass';
  const open = new Set<Socket>();
  const server: Server = createServer((client) => {
    open.add(client);
    client.on('close', () => open.delete(client));
    client.on('error', () => {});
    if (mode === 'refuse') return void client.destroy();
    if (mode === 'hang') return; // read nothing, answer nothing
    const upstream = connect(target(), '127.0.0.1');
    open.add(upstream);
    upstream.on('close', () => {
      open.delete(upstream);
      client.destroy();
    });
    upstream.on('error', () => client.destroy());
    client.on('close', () => upstream.destroy());
    client.pipe(upstream);
    upstream.pipe(client);
  });
  // Port 0: bound at once, so no other test's freePort() can pick the same port in between.
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as { port: number }).port,
    set(m) {
      mode = m;
      // Pooled connections would keep the old behaviour: drop them all.
      for (const s of open) s.destroy();
    },
    close: () =>
      new Promise<void>((r) => {
        for (const s of open) s.destroy();
        server.close(() => r());
      }),
  };
}

interface Box {
  id: Id;
  root: string;
  keyFile: string;
  publicKey: string;
  secret: string;
  port: number;
  origin: OriginProc;
  /** Output of every `eris serve` run of this box (restarts included). */
  logs: string[];
  sw: Switch;
}

describe.skipIf(!fixture)('several origins behind one edge', () => {
  let dir: string;
  let edge: EdgeProc;
  let netrc: string;
  let auth: Record<string, string>;
  let token: string;
  const boxes = {} as Record<Id, Box>;
  let p: Record<'shared' | 'x' | 'y' | 'z' | 'w', string>;
  let big: string;

  const log = (b: Box) => b.logs.join('') + b.origin.output();
  /** Store paths whose NAR this box sent (its own request log). */
  const narsSent = (b: Box) =>
    log(b).split('\n').flatMap((l) => {
      try {
        const e = JSON.parse(l) as { msg?: string; path?: string; status?: number };
        return e.msg === 'nar sent' && e.path ? [{ path: e.path, status: e.status }] : [];
      } catch {
        return [];
      }
    });
  const get = async (path: string, init: RequestInit = {}): Promise<Response> => {
    const send = () => fetch(edge.url + path, { ...init, headers: { ...auth, ...(init.headers as Record<string, string>) }, signal: AbortSignal.timeout(30_000) });
    try {
      return await send();
    } catch (e) {
      // A pooled socket that wrangler dev closed for idleness just as it was reused: nothing was answered; send again.
      const cause = (e as { cause?: { code?: string; socket?: { bytesRead?: number } } }).cause;
      if (cause?.code !== 'UND_ERR_SOCKET' || cause.socket?.bytesRead !== 0) throw e;
      return send();
    }
  };
  const copy = (paths: string[], to: string, attempts = 1): Promise<NixResult> =>
    runNix(['copy', '--from', edge.url, '--to', to, ...paths,
      '--option', 'trusted-public-keys', IDS.map((i) => boxes[i].publicKey).join(' '), '--option', 'substituters', '',
      '--option', 'netrc-file', netrc, '--option', 'connect-timeout', '5', '--option', 'download-attempts', String(attempts)], { timeoutMs: 120_000 });
  const alive = (b: Box) => b.origin.child.exitCode === null && b.origin.child.signalCode === null;
  const restart = async (b: Box, extraArgs: string[] = []) => {
    if (alive(b)) await kill(b);
    b.logs.push(b.origin.output());
    b.origin = await startOriginCli({ root: b.root, keyFiles: [b.keyFile], edgeSecret: b.secret, port: b.port, extraArgs });
  };
  /** The edge's request log lines (JSON). */
  const edgeLines = () => edgeLogLines(edge.output());
  /** What the edge answers on every path that lists keys, with alice's token. */
  const keyListings = async () => {
    const out: Record<string, { status: number; retryAfter: string | null; missing: string | null; body: string }> = {};
    for (const path of ['/v1/public-key', '/v1/caches', '/v1/cache-config', '/', '/default/']) {
      const res = await get(path);
      out[path] = { status: res.status, retryAfter: res.headers.get('retry-after'), missing: res.headers.get('x-eris-missing-origins'), body: await res.text() };
    }
    return out;
  };
  const kill = async (b: Box) => {
    const child = b.origin.child;
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    process.kill(child.pid!, 'SIGKILL');
    await Promise.race([exited, sleep(5000)]);
  };
  /** Waits until every breaker has had its cool-down and the edge answers from every origin again. */
  const allBack = async () => {
    for (const id of IDS) boxes[id].sw.set('pass');
    await sleep(COOLDOWN_MS + 200);
    expect(await until(async () => (await get(`/${hashOf(p.z)}.narinfo`)).status === 200, 15_000, 200)).toBe(true);
  };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'eris-multi-'));
    const env = nixEnv();
    const built = execFileSync('nix-build', [new URL('../fixtures/origins.nix', import.meta.url).pathname, '--no-out-link', '--option', 'sandbox', 'false', '--option', 'substituters', ''],
      { env, encoding: 'utf8' }).trim().split('\n');
    const byName = (n: string) => built.find((s) => s.endsWith(`-eris-mo-${n}`))!;
    p = { shared: byName('shared'), x: byName('x'), y: byName('y'), z: byName('z'), w: byName('w') };
    // a: x (and shared); b: y (and shared) and the big path; c: z, w and the big path.
    const holds: Record<Id, string[]> = { a: [p.x], b: [p.y], c: [p.z, p.w] };
    for (const id of IDS) {
      const root = join(dir, `root-${id}`);
      execFileSync('nix', [...NIX_FLAGS, 'copy', '--no-check-sigs', '--to', root, ...holds[id]], { env, stdio: 'pipe' });
      const kp = generateKeyPair(`eris-box-${id}-1`);
      const keyFile = join(dir, `${id}.sec`);
      writeFileSync(keyFile, kp.secret);
      const secret = `edge-secret-of-box-${id}-` + kp.public.slice(-12).replace(/[^A-Za-z0-9]/g, 'x');
      const port = await freePort();
      const origin = await startOriginCli({ root, keyFiles: [keyFile], edgeSecret: secret, port });
      boxes[id] = { id, root, keyFile, publicKey: kp.public, secret, port, origin, logs: [], sw: undefined as unknown as Switch };
      boxes[id].sw = await startSwitch(() => boxes[id].port);
    }
    big = addRandomFile(boxes.b.root, dir, 'big.bin', BIG);
    execFileSync('nix', [...NIX_FLAGS, 'copy', '--no-check-sigs', '--from', boxes.b.root, '--to', boxes.c.root, big], { env, stdio: 'pipe' });
    // w is registered on c but its contents are gone: c can only fail for it.
    rmSync(join(boxes.c.root, p.w), { recursive: true, force: true });

    const origins = IDS.map((id) => ({ id, url: `http://127.0.0.1:${boxes[id].sw.port}`, secret: `EDGE_SECRET_${id.toUpperCase()}` }));
    edge = await startEdge({
      originUrl: 'http://127.0.0.1:9', // ignored: ORIGINS is set
      edgeSecret: boxes.a.secret,
      vars: {
        ORIGINS: JSON.stringify(origins),
        EDGE_SECRET_A: boxes.a.secret,
        EDGE_SECRET_B: boxes.b.secret,
        EDGE_SECRET_C: boxes.c.secret,
        BREAKER_THRESHOLD: '2',
        BREAKER_COOLDOWN_MS: String(COOLDOWN_MS),
        ORIGIN_TIMEOUT_MS: String(BUDGET_MS),
        HEDGE_MS: '300',
      },
    });
    token = await addToken({ mode: 'local', persistTo: edge.persistTo }, 'alice', { scopes: ['read'] });
    netrc = join(dir, 'netrc');
    writeFileSync(netrc, `machine 127.0.0.1 login alice password ${token}\n`);
    auth = { Authorization: 'Basic ' + btoa(`alice:${token}`) };
  });

  afterAll(async () => {
    await edge?.stop();
    for (const id of IDS) {
      await boxes[id]?.sw.close();
      await boxes[id]?.origin.stop();
    }
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('copies a closure spread over three origins through one edge, each NAR from an origin that has it', async () => {
    const to = join(dir, 'client-all');
    const r = await copy([p.x, p.y, p.z], to);
    expect(r.stderr).not.toMatch(/error/i);
    expect(r.code).toBe(0);
    for (const path of [p.shared, p.x, p.y, p.z]) expect(storeHas(to, path)).toBe(true);
    const sent = { a: narsSent(boxes.a).map((s) => s.path), b: narsSent(boxes.b).map((s) => s.path), c: narsSent(boxes.c).map((s) => s.path) };
    expect(sent.a).toContain(p.x);
    expect(sent.b).toContain(p.y);
    expect(sent.c).toContain(p.z);
    expect([...sent.a, ...sent.b].filter((s) => s === p.shared)).toHaveLength(1); // from a or b, once
    expect(sent.c).not.toContain(p.shared);
    // The edge's log says which origin answered each request, how many were asked, and how long each took.
    const lines = edge.output().split('\n').flatMap((l) => (l.startsWith('{') && l.includes('"tries"') ? [JSON.parse(l) as Record<string, unknown>] : []));
    const narinfoY = lines.find((l) => l.path === `/${hashOf(p.y)}.narinfo` && l.status === 200);
    expect(narinfoY).toMatchObject({ origin: 'b', tries: expect.arrayContaining([expect.objectContaining({ origin: 'b', result: 200, ms: expect.any(Number) })]) });
    expect(narinfoY!.asked).toBeGreaterThanOrEqual(2);
    // The narinfo named the origin that answered it, so its NAR went straight there: one origin asked.
    const narY = lines.filter((l) => typeof l.path === 'string' && l.path.startsWith('/nar/' + hashOf(p.y)));
    expect(narY).toHaveLength(1);
    expect(narY[0]).toMatchObject({ status: 200, origin: 'b', asked: 1 });
    const info = await (await get(`/${hashOf(p.z)}.narinfo`)).text();
    expect(info).toMatch(/^URL: nar\/\S+\.nar\?eris-origin=c$/m);
  });

  it('eris client-config\'s lines alone, in a fresh NIX_CONF_DIR with its netrc line, let Nix fetch paths spread over all three boxes', async () => {
    await allBack();
    const client = join(dir, 'client-config');
    mkdirSync(client);
    const netrcPath = join(client, 'netrc');
    const r = await erisAsync(['client-config', '--edge-url', edge.url, '--token', token, '--netrc-path', netrcPath]);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    // The nix.conf block is everything up to the first blank line; the netrc line starts with "machine".
    const nixConf = r.stdout.split('\n\n')[0]! + '\n';
    writeFileSync(join(client, 'nix.conf'), nixConf);
    writeFileSync(netrcPath, r.stdout.split('\n').find((l) => l.startsWith('machine '))! + '\n');
    chmodSync(netrcPath, 0o600);
    const substituter = /^extra-substituters = (\S+)$/m.exec(nixConf)![1]!;
    const to = join(dir, 'client-config-store');
    // No --option at all: substituter, keys and netrc come from the pasted lines (NIX_CONFIG emptied).
    // x is on a only, y on b only, z on c only: each signed by its own box's key.
    const copied = await runNix(['copy', '--from', substituter, '--to', to, p.x, p.y, p.z], { env: { NIX_CONF_DIR: client, NIX_CONFIG: '' }, timeoutMs: 120_000 });
    expect(copied.stderr).not.toMatch(/signature/);
    expect(copied.code, copied.stderr).toBe(0);
    for (const path of [p.shared, p.x, p.y, p.z]) expect(storeHas(to, path)).toBe(true);
    // Every box's key, in priority order, once.
    expect(nixConf).toContain(`extra-trusted-public-keys = ${IDS.map((i) => boxes[i].publicKey).join(' ')}\n`);
  });

  it('eris doctor --edge-url sees every box\'s key at the edge, and flags origins that disagree on a cache\'s priority', async () => {
    await allBack();
    const doctor = async () => {
      const r = await erisAsync(['doctor', '--bind', `127.0.0.1:${boxes.a.port}`, '--store-root', boxes.a.root, '--sign-key', boxes.a.keyFile, '--edge-url', edge.url, '--token', token, '--user', 'alice'],
        { env: { ...process.env, ERIS_EDGE_SECRET: boxes.a.secret } });
      return r.stdout.split('\n').filter((l) => /^(ok|FAIL|skip) +edge/.test(l));
    };
    const others = [boxes.b.publicKey, boxes.c.publicKey].join(' ');
    expect(await doctor()).toEqual([
      `ok   edge: ${edge.url}/nix-cache-info answers with the token (StoreDir: /nix/store)`,
      'ok   edge caching: Cache-Control: private, no-store',
      'ok   edge cache default: priority 30, 3 key(s) from every origin, this box\'s included',
      `ok   edge public key: the edge serves the configured public key(s) and 2 of other origins (${others})`,
    ]);
    // c now says priority 40 for the default cache; a and b say 30.
    await restart(boxes.c, ['--priority', '40']);
    try {
      expect(await doctor()).toContain(
        'FAIL edge cache default: the origins disagree on its priority (a: 30, b: 30, c: 40); clients are told 30. Give it the same priority on every box');
    } finally {
      await restart(boxes.c);
    }
  });

  it('one box dead: every key listing answers 503 + Retry-After naming it, and eris client-config prints no lines', async () => {
    await allBack();
    await kill(boxes.c);
    try {
      const answers = await keyListings();
      for (const [path, a] of Object.entries(answers)) {
        expect({ path, status: a.status, retryAfter: a.retryAfter, missing: a.missing }).toEqual({ path, status: 503, retryAfter: '5', missing: 'c' });
        // Never the keys it did get as something to paste.
        if (path.startsWith('/v1/')) expect(a.body).not.toContain(boxes.a.publicKey);
      }
      expect(answers['/v1/public-key']!.body).toMatch(/^public key list unavailable: origin c \(unreachable[^)]*\) did not answer/);
      expect(answers['/']!.body).toContain('id="keys-incomplete"');
      const r = await erisAsync(['client-config', '--edge-url', edge.url, '--token', token]);
      expect(r.status).not.toBe(0);
      expect(r.stdout).toBe('');
      expect(r.stderr).toMatch(/503: cache configuration unavailable: origin c .* did not answer, so keys may be missing; retry later/);
      // A hung box (accepts, never answers) too, within the edge's budget.
      await restart(boxes.c);
      boxes.b.sw.set('hang');
      const t = performance.now();
      const hung = await get('/v1/public-key');
      expect(hung.status).toBe(503);
      expect(hung.headers.get('x-eris-missing-origins')).toBe('b');
      expect(await hung.text()).toContain(`origin b (no answer in ${BUDGET_MS} ms)`);
      expect(performance.now() - t).toBeLessThan(BUDGET_MS + 5000);
    } finally {
      boxes.b.sw.set('pass');
      if (!alive(boxes.c)) await restart(boxes.c);
    }
    // All back: a clean 200 everywhere again.
    await allBack();
    for (const [path, a] of Object.entries(await keyListings())) expect({ path, status: a.status, missing: a.missing }).toEqual({ path, status: 200, missing: null });
  });

  it('a NAR whose client went away mid-body is logged as cut by the client', async () => {
    await allBack();
    const info = await (await get(`/${hashOf(big)}.narinfo`)).text();
    const url = /^URL: (.*)$/m.exec(info)![1]!;
    const ac = new AbortController();
    const res = await fetch(`${edge.url}/${url}`, { headers: auth, signal: ac.signal });
    expect(res.status).toBe(200);
    const reader = res.body!.getReader();
    let got = 0;
    while (got < 4 << 20) got += (await reader.read()).value!.byteLength;
    ac.abort();
    const narPath = '/' + url.split('?')[0];
    const line = () => edgeLines().find((l) => l.path === narPath && l.body === 'cut-client');
    expect(await until(() => line() !== undefined, 15_000, 100)).toBe(true);
    expect(line()).toMatchObject({ status: 200, length: BIG + 112, bytes: expect.any(Number) });
    expect(line()!.bytes as number).toBeGreaterThanOrEqual(4 << 20);
    expect(line()!.bytes as number).toBeLessThan(BIG);
  });

  it('an origin killed mid-NAR: the copy resumes from another origin that has the path', async () => {
    await allBack();
    const to = join(dir, 'client-big');
    const copying = copy([big], to, 5);
    const pid = boxes.b.origin.child.pid!;
    expect(await until(() => openFds(pid).some((f) => f.includes(big.slice(11))), 30_000, 5)).toBe(true);
    const start = readChars(pid);
    expect(await until(() => readChars(pid) - start >= 8 << 20, 30_000, 2)).toBe(true);
    await kill(boxes.b);
    const r = await copying;
    expect(r.code).toBe(0);
    expect(storeHas(to, big)).toBe(true);
    expect(r.stderr).toMatch(/retrying from offset [1-9]/);
    expect(narsSent(boxes.c).some((s) => s.path === big && s.status === 206)).toBe(true);
    // The edge's log tells the cut NAR from b apart from c's complete resume, each with the bytes that left.
    const narLines = edgeLines().filter((l) => typeof l.path === 'string' && l.path.startsWith(`/nar/${hashOf(big)}`));
    const cut = narLines.find((l) => l.origin === 'b' && l.body === 'cut-origin');
    expect(cut).toMatchObject({ status: 200, length: BIG + 112, bytes: expect.any(Number) });
    expect(cut!.bytes as number).toBeGreaterThan(0);
    expect(cut!.bytes as number).toBeLessThan(BIG + 112);
    const resumed = narLines.find((l) => l.origin === 'c' && l.status === 206);
    expect(resumed).toMatchObject({ body: 'complete' });
    expect((cut!.bytes as number) + (resumed!.bytes as number)).toBeGreaterThanOrEqual(BIG + 112);
  });

  it('a path only the dead origin held fails clearly (5xx, never a miss); once it is back it is used again after its cool-down', async () => {
    // b is still dead from the test before (restart it here if this runs alone).
    if (boxes.b.origin.child.exitCode === null && boxes.b.origin.child.signalCode === null) await kill(boxes.b);
    const res = await get(`/${hashOf(p.y)}.narinfo`);
    expect(res.status).toBeGreaterThanOrEqual(500);
    expect(res.headers.get('retry-after')).toMatch(/^\d+$/);
    const failed = await copy([p.y], join(dir, 'client-y-down'));
    expect(failed.code).not.toBe(0);
    expect(failed.stderr).toMatch(/HTTP error 50[234]/);
    // Paths the others hold are still served.
    expect((await copy([p.x, p.z], join(dir, 'client-xz-b-down'))).code).toBe(0);
    await restart(boxes.b);
    await sleep(COOLDOWN_MS + 200);
    const back = await copy([p.y], join(dir, 'client-y-back'));
    expect(back.code).toBe(0);
    expect(narsSent(boxes.b).filter((s) => s.path === p.y).length).toBeGreaterThanOrEqual(1);
    expect(boxes.b.origin.output()).toContain(hashOf(p.y)); // this run of b sent it
  });

  it('all origins down: 503, no-store, within 2 s, never 404', async () => {
    await allBack();
    for (const id of IDS) boxes[id].sw.set('refuse');
    try {
      for (let i = 0; i < 5; i++) {
        const t = performance.now();
        const res = await get(`/${hashOf(p.x)}.narinfo`);
        const ms = performance.now() - t;
        await res.body?.cancel();
        expect({ i, status: res.status, cc: res.headers.get('cache-control'), fast: ms < 2000 }).toEqual({ i, status: 503, cc: 'private, no-store', fast: true });
        expect(Number(res.headers.get('retry-after'))).toBeGreaterThan(0);
      }
    } finally {
      for (const id of IDS) boxes[id].sw.set('pass');
    }
  });

  it('one origin hung (accepts, never answers): the others still answer, within the hedge delay, and a miss is never a 404', async () => {
    await allBack();
    boxes.a.sw.set('hang');
    try {
      const t = performance.now();
      const y = await get(`/${hashOf(p.y)}.narinfo`);
      expect(y.status).toBe(200);
      expect(performance.now() - t).toBeLessThan(BUDGET_MS);
      // x lives on the hung origin only: the others say 404, so the edge cannot say "absent".
      const x = await get(`/${hashOf(p.x)}.narinfo`);
      expect(x.status).toBeGreaterThanOrEqual(500);
      expect(x.headers.get('cache-control')).toBe('private, no-store');
    } finally {
      boxes.a.sw.set('pass');
    }
  });

  it('a path on one origin only, which fails for it with a 5xx: the edge answers 5xx, not 404', async () => {
    await allBack();
    const info = await get(`/${hashOf(p.w)}.narinfo`);
    if (info.status === 200) {
      const url = /^URL: (.*)$/m.exec(await info.text())![1]!;
      expect(url).toMatch(/\?eris-origin=c$/);
      const nar = await get('/' + url);
      await nar.body?.cancel();
      expect(nar.status).toBeGreaterThanOrEqual(500);
    } else {
      expect(info.status).toBeGreaterThanOrEqual(500);
    }
    const r = await copy([p.w], join(dir, 'client-w'));
    expect(r.code).not.toBe(0);
    expect(r.stderr).not.toMatch(/does not exist|is not valid/);
  });
});
