/**
 * The end-to-end harness: `eris serve` (its own process, as users run it) and
 * the Worker under `wrangler dev --local`, wired with an edge secret, a signing
 * key and a token — what every end-to-end test file uses instead of building
 * its own. In a describe block:
 *
 *   const s = useStack(() => ({ root: fixture!.root }));  // boots in beforeAll; stops and cleans up in afterAll
 *   it('…', async () => expect((await s.get('/nix-cache-info')).status).toBe(200));
 *
 * - `root` may be a function of the stack's temp dir that prepares a private store (copyStore,
 *   addRandomFile from ./faults.ts) when a test changes the store; the fixture root is read-only.
 * - `origin: { handler }` puts a stand-in HTTP origin behind the Worker instead (no Nix needed).
 * - The stack has a temp dir (`s.dir`, removed afterwards), a signing key (`s.keyFile` 0600, `.pub`
 *   beside it, `s.publicKey`), a read token for `alice` (`s.token`, `s.netrc` for Nix, `s.auth` for
 *   fetch), `s.get` (through the edge with the token), `s.direct` (straight to the origin with the
 *   edge secret), `s.addToken`, `s.killOrigin` / `s.restartOrigin` (same port, optionally other flags).
 * - `tokens: { label: { user, scopes, … } }` makes more tokens (`s.tokens.label`) in the same wrangler run as
 *   alice's: each `wrangler kv` run costs seconds of CPU, so a file's tokens are best made here, at once.
 * - Every wait is bounded; processes are stopped by their process group.
 * Each wrangler dev boot costs seconds of CPU on a 2-core machine: a file that only reads through the
 * default stack over the fixture store uses the run's shared one instead (useSharedStack() in
 * ./shared-stack.ts: e2e, doctor and fuzz boot one stack between them); otherwise add tests to a file
 * whose stack fits before booting another. Outside vitest (the soak run) use startStack().
 */
import { afterAll, beforeAll } from 'vitest';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type RequestListener, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { addToken, tokenEntry, wranglerKv, type AddTokenOptions, type KvTarget } from '../../origin/tokens/cli.ts';
import { EDGE_SECRET_HEADER } from '../../shared/contract.ts';
import { writeKeyPair } from '../../origin/cli/keygen.ts';
import { parseNarInfo } from '../../shared/narinfo.ts';
import { hashOf, nixCopy, nixEnv, type CopyOptions, type NixResult } from './nix.ts';
import { freePort, startEdge, startOriginCli, type EdgeProc, type OriginProc, type RunAs } from './processes.ts';

export interface StackOptions {
  /** The store root `eris serve` serves, or a function preparing one in the stack's dir. */
  root?: string | ((dir: string) => string | Promise<string>);
  /** Extra `eris serve` arguments, e.g. ['--workers', '2'], or a function of the stack's dir giving them. */
  originArgs?: string[] | ((dir: string) => string[]);
  /** A stand-in origin behind the Worker instead of `eris serve` (then `root` is not used). */
  origin?: { handler: RequestListener };
  /** Worker variables (`--var`), e.g. { ORIGIN_TIMEOUT_MS: '1500' }. */
  vars?: Record<string, string>;
  /** The edge's port, when a variable must name the edge's URL before it starts (default: a free one). */
  edgePort?: number;
  secret?: string;
  /** The signing key's name (default eris-test-1); `keyBy: 'nix'` has nix-store --generate-binary-cache-key make it. */
  keyName?: string;
  keyBy?: 'eris' | 'nix';
  /** The token's user (default alice) and scopes (default read); `user: null` adds no token. */
  user?: string | null;
  scopes?: ('read' | 'write')[];
  /** More tokens, by a label of the test's choosing, written with the default one in one wrangler run (`s.tokens`). */
  tokens?: Record<string, { user: string } & AddTokenOptions>;
  /** The caches the token may use (default: the default cache only). */
  caches?: string[];
  /** Write the processes' output to files in this dir (so they may outlive this process) instead of memory. */
  logDir?: string;
  /** Run `eris serve` as this user (a deployed origin's unprivileged account), with these extra variables. */
  originUser?: RunAs;
  originEnv?: NodeJS.ProcessEnv;
}

/** `eris serve`, or a stand-in server in its place (then `child` is absent). */
export interface StackOrigin {
  url: string;
  port: number;
  child?: OriginProc['child'];
  output(): string;
  stop(): Promise<void>;
}

export interface Stack<O extends StackOrigin = OriginProc> {
  dir: string;
  /** The store root served (undefined with a stand-in origin). */
  root: string;
  secret: string;
  origin: O;
  edge: EdgeProc;
  user: string;
  token: string;
  /** The tokens asked for with `tokens`, by label. */
  tokens: Record<string, string>;
  keyFile: string;
  publicKeyFile: string;
  publicKey: string;
  /** A netrc for Nix holding the token. */
  netrc: string;
  /** Basic credentials for fetch. */
  auth: Record<string, string>;
  /** GET (or other) through the edge with credentials (`auth: false`: without). */
  get(path: string, init?: RequestInit & { auth?: boolean }): Promise<Response>;
  /** Straight to the origin with the edge secret. */
  direct(path: string, init?: RequestInit): Promise<Response>;
  /** Another token in the edge's KV. */
  addToken(user: string, opts?: AddTokenOptions): Promise<string>;
  /** SIGKILL the origin (no clean shutdown). */
  killOrigin(): Promise<void>;
  /** Start the origin again on the same port (after it stopped or was killed), optionally with other arguments. */
  restartOrigin(o?: { originArgs?: string[] }): Promise<void>;
  stop(): Promise<void>;
}

function writeKey(dir: string, name: string, by: 'eris' | 'nix'): { keyFile: string; publicKeyFile: string; publicKey: string } {
  const keyFile = join(dir, 'cache.sec');
  const publicKeyFile = join(dir, 'cache.pub');
  if (by === 'nix') execFileSync('nix-store', ['--generate-binary-cache-key', name, keyFile, publicKeyFile], { env: nixEnv() });
  else writeKeyPair(name, keyFile, publicKeyFile);
  return { keyFile, publicKeyFile, publicKey: readFileSync(publicKeyFile, 'utf8').trim() };
}

async function startStandIn(handler: RequestListener): Promise<StackOrigin> {
  const server: Server = createServer(handler);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    output: () => '',
    stop: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

/** Boots a stack in `dir` (which the caller removes). */
export async function startStack<O extends StackOrigin = OriginProc>(o: StackOptions & { dir: string }): Promise<Stack<O>> {
  const secret = o.secret ?? 'e2e-edge-secret-' + randomBytes(12).toString('hex');
  const user = o.user === undefined ? 'alice' : o.user;
  const key = writeKey(o.dir, o.keyName ?? 'eris-test-1', o.keyBy ?? 'eris');
  const root = o.origin ? '' : typeof o.root === 'function' ? await o.root(o.dir) : o.root;
  if (root === undefined) throw new Error('startStack: give root (a store root) or origin (a stand-in)');
  const port = await freePort();
  const defaultArgs = typeof o.originArgs === 'function' ? o.originArgs(o.dir) : o.originArgs;
  const originLog = o.logDir && join(o.logDir, 'origin.log');
  const originOpts = (args = defaultArgs) => ({ root, keyFiles: [key.keyFile], edgeSecret: secret, port, extraArgs: args, logFile: originLog, user: o.originUser, env: o.originEnv });
  let origin: StackOrigin = o.origin ? await startStandIn(o.origin.handler) : await startOriginCli(originOpts());
  let edge: EdgeProc;
  try {
    const edgeDir = join(o.dir, 'edge');
    mkdirSync(edgeDir);
    edge = await startEdge({ originUrl: origin.url, edgeSecret: secret, vars: o.vars, port: o.edgePort, dir: edgeDir, logFile: o.logDir && join(o.logDir, 'edge.log') });
  } catch (e) {
    await origin.stop();
    throw e;
  }
  const kv = { mode: 'local' as const, persistTo: edge.persistTo };
  const wanted = Object.values(o.tokens ?? {}).map(({ user: u, ...opts }) => ({ user: u, opts }));
  if (user !== null) wanted.unshift({ user, opts: { scopes: o.scopes ?? ['read'], caches: o.caches } });
  const made = await addTokens(kv, wanted);
  const token = user === null ? '' : made.shift()!;
  const tokens = Object.fromEntries(Object.keys(o.tokens ?? {}).map((label, i) => [label, made[i]!]));
  const netrc = join(o.dir, 'netrc');
  writeFileSync(netrc, user === null ? '' : `machine 127.0.0.1 login ${user} password ${token}\n`, { mode: 0o600 });
  const auth: Record<string, string> = user === null ? {} : { Authorization: 'Basic ' + btoa(`${user}:${token}`) };
  const stack: Stack<StackOrigin> = {
    dir: o.dir,
    root,
    secret,
    get origin() {
      return origin;
    },
    edge,
    user: user ?? '',
    token,
    tokens,
    ...key,
    netrc,
    auth,
    ...clients({ edgeUrl: edge.url, originUrl: () => origin.url, secret, auth, persistTo: edge.persistTo }),
    async killOrigin() {
      const child = origin.child;
      if (!child || child.exitCode !== null || child.signalCode !== null) return;
      // 'close', not 'exit': by then every line it wrote is in output(), which callers read next.
      const exited = new Promise<void>((r) => child.once('close', () => r()));
      process.kill(child.pid!, 'SIGKILL');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
    },
    async restartOrigin(r = {}) {
      if (o.origin) throw new Error('restartOrigin: the stand-in origin is the test\'s own');
      await origin.stop();
      origin = await startOriginCli(originOpts(r.originArgs ?? defaultArgs));
    },
    async stop() {
      await edge.stop();
      await origin.stop();
    },
  };
  return stack as unknown as Stack<O>;
}

/** New tokens, stored in one `wrangler kv bulk put` (one wrangler run instead of one each); returned in order. */
export async function addTokens(target: KvTarget, wanted: { user: string; opts?: AddTokenOptions }[]): Promise<string[]> {
  if (wanted.length <= 1) return Promise.all(wanted.map((w) => addToken(target, w.user, w.opts)));
  const entries = await Promise.all(wanted.map((w) => tokenEntry(w.user, w.opts)));
  // Keys are digests and values records, as addToken writes them: the file holds no token.
  const dir = mkdtempSync(join(tmpdir(), 'eris-tokens-'));
  try {
    const file = join(dir, 'tokens.json');
    writeFileSync(file, JSON.stringify(entries.map((e) => ({ key: e.key, value: JSON.stringify(e.record), metadata: e.record }))));
    wranglerKv(target, ['bulk', 'put', file]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return entries.map((e) => e.token);
}

/** get / direct / addToken over a stack's addresses and credentials. */
export function clients(o: { edgeUrl: string; originUrl: () => string; secret: string; auth: Record<string, string>; persistTo: string }): Pick<Stack, 'get' | 'direct' | 'addToken'> {
  return {
    get(path, init = {}) {
      const headers = new Headers(init.headers);
      if (init.auth !== false) for (const [k, v] of Object.entries(o.auth)) headers.set(k, v);
      return fetch(o.edgeUrl + path, { ...init, headers, signal: init.signal ?? AbortSignal.timeout(30_000) });
    },
    direct(path, init = {}) {
      const headers = new Headers(init.headers);
      headers.set(EDGE_SECRET_HEADER, o.secret);
      return fetch(o.originUrl() + path, { ...init, headers, signal: init.signal ?? AbortSignal.timeout(30_000) });
    },
    addToken: (u, opts) => addToken({ mode: 'local', persistTo: o.persistTo }, u, opts),
  };
}

/** A stand-in for an object that exists only once a hook has run: any use before then is a clear error. */
export function later<T extends object>(what: string, current: () => T | undefined): T {
  return new Proxy({} as T, {
    get(_, k) {
      const v = current();
      if (!v) throw new Error(`${what} is not started: use it in it() or in a beforeAll registered after useStack()`);
      const x = Reflect.get(v, k, v);
      return typeof x === 'function' ? x.bind(v) : x;
    },
  });
}

/**
 * A stack for the enclosing describe block: started in beforeAll (options read then, so they may
 * use inject()ed values), stopped and its temp dir removed in afterAll.
 */
export function useStack(options: () => StackOptions & { origin?: undefined }): Stack;
export function useStack(options: () => StackOptions & { origin: { handler: RequestListener } }): Stack<StackOrigin>;
export function useStack(options: () => StackOptions): Stack<StackOrigin> {
  let dir: string | undefined;
  let stack: Stack<StackOrigin> | undefined;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'eris-stack-'));
    stack = await startStack({ ...options(), dir });
  });
  afterAll(async () => {
    await stack?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });
  return later('the stack', () => stack);
}

/** `nix copy` from the stack's edge (or `from`, e.g. a proxy in front of it) with the stack's key and netrc (`netrc: null`: none). */
export function nixCopyFrom(s: { edge: { url: string }; publicKey: string; netrc: string }, o: Omit<CopyOptions, 'from' | 'trustedKeys' | 'netrc'> & { from?: string; trustedKeys?: string; netrc?: string | null }): Promise<NixResult> {
  return nixCopy({ ...o, from: o.from ?? s.edge.url, trustedKeys: o.trustedKeys ?? s.publicKey, netrc: o.netrc === null ? undefined : o.netrc ?? s.netrc });
}

/** The narinfo of a path, fetched straight from the origin. */
export async function narInfoOf(s: Pick<Stack, 'direct'>, storePath: string) {
  const res = await s.direct(`/${hashOf(storePath)}.narinfo`);
  if (res.status !== 200) throw new Error(`narinfo of ${storePath}: ${res.status}`);
  return parseNarInfo(await res.text());
}
