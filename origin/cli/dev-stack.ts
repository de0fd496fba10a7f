/**
 * `npm start` (`eris dev`): the origin on this machine's store plus the Worker
 * under `wrangler dev --local`, wired together, offline. Environment contract:
 * ERIS_STORE_ROOT (/), ERIS_EDGE_PORT (8787), ERIS_ORIGIN_PORT (8788),
 * ERIS_DEV_DIR (.eris-dev) holding signing-key.sec/.pub, netrc, edge-secret,
 * and ERIS_CONFIG: an origin config file (what `eris serve --config` reads) —
 * the dev stack supplies bind, store root, keys and edge secret where the file
 * leaves them out; the dev token may use every cache the file lists.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import { createInterface } from 'node:readline';
import { ConfigError, parseConfigFile, resolveConfig, type OriginConfig, type Raw } from '../config/index.ts';
import { resolveCacheRoots } from '../caches/roots.ts';
import { checkStoreRoot, storeDbPath } from '../store/store.ts';
import { openStoreDb } from '../store/db.ts';
import { createSigner } from '../../shared/signing.ts';
import { writeKeyPair } from './keygen.ts';
import type { CliIo } from './args.ts';
import { readNetrcEntry } from './netrc.ts';
import { addToken, newToken, PROJECT_DIR, WRANGLER, wranglerEnv } from '../tokens/cli.ts';
import { DEFAULT_CACHE_NAME } from '../../shared/caches.ts';

export interface DevSettings {
  storeRoot: string;
  edgePort: number;
  originPort: number;
  devDir: string;
}

function port(name: string, value: string | undefined, fallback: number): number {
  if (value === undefined || value === '') return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 65535) throw new ConfigError(`${name} must be a port number (1-65535), got ${JSON.stringify(value)}`);
  return n;
}

export function devSettings(env: NodeJS.ProcessEnv): DevSettings {
  return {
    storeRoot: resolve(env.ERIS_STORE_ROOT || '/'),
    edgePort: port('ERIS_EDGE_PORT', env.ERIS_EDGE_PORT, 8787),
    originPort: port('ERIS_ORIGIN_PORT', env.ERIS_ORIGIN_PORT, 8788),
    devDir: resolve(env.ERIS_DEV_DIR || '.eris-dev'),
  };
}

/** Signing key pair in devDir: an existing signing-key.sec (e.g. from nix-store --generate-binary-cache-key) is used as is. */
export function ensureDevKey(devDir: string): string {
  const sec = join(devDir, 'signing-key.sec');
  const pub = join(devDir, 'signing-key.pub');
  if (!existsSync(sec)) return writeKeyPair('eris-dev-1', sec, pub);
  const signer = createSigner(readFileSync(sec, 'utf8'));
  if (!existsSync(pub)) writeFileSync(pub, signer.publicKey, { mode: 0o644 });
  else if (readFileSync(pub, 'utf8').trim() !== signer.publicKey) {
    throw new ConfigError(`${pub} does not belong to ${sec}; remove one of them`);
  }
  return signer.publicKey;
}

function ensureSecretFile(path: string, make: () => string): string {
  if (existsSync(path)) return readFileSync(path, 'utf8').trim();
  const v = make();
  writeFileSync(path, v + '\n', { mode: 0o600 });
  return v;
}

/** The dev token: reused from an existing netrc, else new. */
export function ensureNetrc(devDir: string): string {
  const netrc = join(devDir, 'netrc');
  let token = readNetrcEntry(netrc, '127.0.0.1', { optional: true })?.password;
  token ??= newToken();
  writeFileSync(netrc, `machine 127.0.0.1 login dev password ${token}\n`, { mode: 0o600 });
  return token;
}

function samplePath(root: string): string | undefined {
  try {
    const db = openStoreDb(storeDbPath(root), '/nix/store');
    try {
      return db.newestPath();
    } finally {
      db.close();
    }
  } catch {
    return undefined;
  }
}

function pipeLines(child: ChildProcess, tag: string) {
  for (const stream of [child.stdout, child.stderr]) {
    if (!stream) continue;
    createInterface({ input: stream }).on('line', (line) => process.stderr.write(`[${tag}] ${line}\n`));
  }
}

async function waitReady(url: string, children: ChildProcess[], timeoutMs: number, headers: Record<string, string> = {}): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    for (const ch of children) if (ch.exitCode !== null) throw new Error(`a process of the stack exited early (code ${ch.exitCode})`);
    try {
      const res = await fetch(url, { headers, signal: AbortSignal.timeout(2000) });
      if (res.status === 200) return;
    } catch {
      // not up yet
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`the stack did not answer ${url} within ${timeoutMs / 1000} s`);
}

/** ERIS_CONFIG's file (its absolute path) and its keys, read once; undefined without ERIS_CONFIG. */
export function devConfigFile(env: NodeJS.ProcessEnv): { path: string; raw: Raw } | undefined {
  if (!env.ERIS_CONFIG) return undefined;
  const path = resolve(env.ERIS_CONFIG);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new ConfigError(`ERIS_CONFIG: cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? e}`);
  }
  return { path, raw: parseConfigFile(text, env.ERIS_CONFIG, env) };
}

/** The origin config of the dev stack: ERIS_CONFIG's file, with what it leaves out filled in by the stack. */
export function devOriginConfig(env: NodeJS.ProcessEnv, s: DevSettings, devKey: string, edgeSecret: string, fromFile = devConfigFile(env)): { config: OriginConfig; serveArgs: string[] } {
  const configFile = fromFile?.path;
  const file: Raw = fromFile?.raw ?? {};
  const flags: Raw = {};
  const serveArgs = configFile ? ['--config', configFile] : [];
  if (file.bind === undefined) {
    flags.bind = `127.0.0.1:${s.originPort}`;
    serveArgs.push('--bind', flags.bind as string);
  }
  if (file.storeRoot === undefined) {
    flags.storeRoot = s.storeRoot;
    serveArgs.push('--store-root', s.storeRoot);
  }
  if (file.signKeyPaths === undefined) {
    flags.signKeyPaths = [devKey];
    serveArgs.push('--sign-key', devKey);
  }
  if (file.stateDir === undefined) {
    // Usage accounting for `eris usage --state-dir <ERIS_DEV_DIR>/state`.
    flags.stateDir = join(s.devDir, 'state');
    serveArgs.push('--state-dir', flags.stateDir as string);
  }
  // The edge secret: the file's, else the stack's (given to the origin as $ERIS_EDGE_SECRET).
  const config = resolveConfig({ file, flags, env: { ...env, ERIS_EDGE_SECRET: edgeSecret } });
  return { config, serveArgs };
}

/** `eris dev`, what `npm start` runs: it takes no arguments. */
export const run = (_argv: string[], io: CliIo) => runDevStack(io.env);

export async function runDevStack(env: NodeJS.ProcessEnv): Promise<void> {
  const s = devSettings(env);
  const fromFile = devConfigFile(env);
  // The file may name its own store root; the check below is for the one served.
  if (typeof fromFile?.raw.storeRoot === 'string') s.storeRoot = resolve(fromFile.raw.storeRoot);
  const problem = checkStoreRoot(s.storeRoot, '/nix/store');
  if (problem) throw new ConfigError(`${problem} (set ERIS_STORE_ROOT to a directory holding nix/store and nix/var/nix/db)`);
  mkdirSync(s.devDir, { recursive: true, mode: 0o700 });

  const devPublicKey = ensureDevKey(s.devDir);
  const devSecret = ensureSecretFile(join(s.devDir, 'edge-secret'), () => randomBytes(32).toString('base64url'));
  const { config, serveArgs } = devOriginConfig(env, s, join(s.devDir, 'signing-key.sec'), devSecret, fromFile);
  const token = ensureNetrc(s.devDir);
  const state = join(s.devDir, 'wrangler-state');
  // With a config file the dev token may use every cache in it; without, the one cache (the default).
  const cacheNames = config.caches.map((c) => c.name);
  await addToken({ mode: 'local', persistTo: state }, 'dev', { scopes: ['read', 'write'], token, caches: env.ERIS_CONFIG ? cacheNames : undefined });
  const workerEnv = join(s.devDir, 'worker.env');
  const originHost = config.host.includes(':') ? `[${config.host}]` : config.host === '0.0.0.0' ? '127.0.0.1' : config.host;
  writeFileSync(workerEnv, `ORIGIN_URL=http://${originHost}:${config.port}\nEDGE_SECRET=${config.edgeSecret}\nDEFAULT_CACHE=${config.defaultCache ?? DEFAULT_CACHE_NAME}\n`, { mode: 0o600 });

  const origin = spawn(process.execPath, [
    '--disable-warning=ExperimentalWarning', join(PROJECT_DIR, 'origin/cli/index.ts'), 'serve', ...serveArgs,
  ], { env: { ...process.env, ERIS_EDGE_SECRET: devSecret }, stdio: ['ignore', 'pipe', 'pipe'] });
  const edge = spawn(WRANGLER, [
    'dev', '--local', '--ip', '127.0.0.1', '--port', String(s.edgePort), '--show-interactive-dev-session=false',
    '--config', join(PROJECT_DIR, 'wrangler.toml'), '--persist-to', state, '--env-file', workerEnv,
    '--inspector-port', '0',
  ], { env: wranglerEnv(), stdio: ['ignore', 'pipe', 'pipe'], cwd: s.devDir });
  pipeLines(origin, 'origin');
  pipeLines(edge, 'edge');

  const children = [origin, edge];
  let stopping = false;
  const stop = (code: number) => {
    if (stopping) return;
    stopping = true;
    for (const ch of children) if (ch.exitCode === null) ch.kill('SIGTERM');
    setTimeout(() => process.exit(code), 3000).unref();
    Promise.all(children.map((ch) => (ch.exitCode !== null ? null : new Promise((r) => ch.once('exit', r))))).then(() => process.exit(code));
  };
  process.once('SIGINT', () => stop(0));
  process.once('SIGTERM', () => stop(0));
  for (const ch of children) ch.once('exit', (code) => {
    if (!stopping) {
      process.stderr.write(`eris: ${ch === origin ? 'origin' : 'wrangler dev'} exited (code ${code}); stopping\n`);
      stop(1);
    }
  });

  const edgeUrl = `http://127.0.0.1:${s.edgePort}`;
  try {
    // /health with the dev token: answers whether or not there is a default cache.
    await waitReady(`${edgeUrl}/health`, children, 120_000, { Authorization: `Basic ${Buffer.from(`dev:${token}`).toString('base64')}` });
  } catch (e) {
    stop(1);
    throw e;
  }
  const netrc = join(s.devDir, 'netrc');
  const keysOf = (paths: string[]) => paths.map((p) => (p === join(s.devDir, 'signing-key.sec') ? devPublicKey : createSigner(readFileSync(p, 'utf8')).publicKey));
  // The command to try: the default cache at the bare root, else the first cache under its prefix.
  const shown = config.caches.find((c) => c.name === config.defaultCache) ?? config.caches[0]!;
  const shownUrl = shown.name === config.defaultCache ? edgeUrl : `${edgeUrl}/${shown.name}`;
  const publicKey = keysOf(shown.signKeyPaths).join(' ');
  const example = (shown.publish === 'all'
    ? samplePath(s.storeRoot)
    : resolveCacheRoots(config.storeRoot, config.storeDir, shown.name, shown.roots).find((r) => r.storePath)?.storePath) ?? '/nix/store/<hash>-<name>';
  const cachesText = env.ERIS_CONFIG
    ? 'caches:\n' + config.caches.map((c) => `  ${c.name}${c.name === config.defaultCache ? ' (default, also at the bare root)' : ''}: ${edgeUrl}/${c.name}  ` +
      `publish = ${c.publish}, priority ${c.priority}, key ${keysOf(c.signKeyPaths).join(' ')}\n`).join('')
    : '';
  process.stdout.write(
    `eris is serving ${join(s.storeRoot, 'nix/store')} at ${edgeUrl} (origin on ${originHost}:${config.port})\n` +
      cachesText +
      `public key: ${publicKey}\n` +
      `netrc:      ${netrc}\n\n` +
      `try it:\n  nix copy --extra-experimental-features nix-command --from ${shownUrl} --to /tmp/eris-copy ${example} \\\n` +
      `    --option trusted-public-keys '${publicKey}' --option netrc-file ${netrc} --option substituters ''\n\n` +
      `Ctrl-C stops both.\n`,
  );
}
