/**
 * Usage accounting and client set-up as users meet them: `eris serve` with two
 * workers and a state directory, the Worker under `wrangler dev`, real
 * `nix copy` by two users with two tokens. `eris usage --json` must show each
 * user's NAR bytes equal to the NarSizes they fetched, keep them across a
 * restart, and count nothing twice. And `eris client-config` prints what a
 * fresh client pastes into nix.conf and netrc to copy with no other flag.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { addToken, PROJECT_DIR } from '../origin/tokens.ts';
import { nixCopy, nixEnv, NIX_FLAGS, runNix } from './helpers/nix.ts';
import { freePort, startEdge, startOriginCli, type EdgeProc, type OriginProc } from './helpers/processes.ts';

const fixture = inject('fixture');
const SECRET = 'usage-edge-secret-0123456789abcdef';

/** NarSize of every path in the closures of `paths`, from the fixture store itself. */
function narSizes(paths: string[]): Map<string, number> {
  const out = execFileSync('nix', [...NIX_FLAGS, 'path-info', '--json', '--recursive', '--store', fixture!.root, ...paths], { env: nixEnv(), encoding: 'utf8' });
  const data = JSON.parse(out) as { path: string; narSize: number }[];
  return new Map(data.map((d) => [d.path, d.narSize]));
}

function erisUsage(args: string[]): { users: { user: string | null; nars: number; narBytesSent: number; narinfoHits: number }[]; totals: Record<string, number> } {
  const out = execFileSync(process.execPath, ['--disable-warning=ExperimentalWarning', join(PROJECT_DIR, 'origin/cli.ts'), 'usage', '--json', ...args], { encoding: 'utf8' });
  return JSON.parse(out);
}

describe.skipIf(!fixture)('usage accounting through the Worker, two origin workers', () => {
  let dir: string;
  let stateDir: string;
  let configFile: string;
  let keyFile: string;
  let publicKey: string;
  let originPort: number;
  let origin: OriginProc;
  let edge: EdgeProc;
  const netrc: Record<string, string> = {};
  const tokens: Record<string, string> = {};

  const startOrigin = () =>
    startOriginCli({ root: fixture!.root, keyFiles: [keyFile], edgeSecret: SECRET, port: originPort, extraArgs: ['--config', configFile] });

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'eris-usage-e2e-'));
    stateDir = join(dir, 'state');
    keyFile = join(dir, 'cache.sec');
    const pub = join(dir, 'cache.pub');
    execFileSync('nix-store', ['--generate-binary-cache-key', 'usage-cache-1', keyFile, pub], { env: nixEnv() });
    publicKey = readFileSync(pub, 'utf8').trim();
    configFile = join(dir, 'eris.toml');
    writeFileSync(configFile, `state_dir = "${stateDir}"\nworkers = 2\n`);
    originPort = await freePort();
    origin = await startOrigin();
    edge = await startEdge({ originUrl: origin.url, edgeSecret: SECRET });
    for (const user of ['alice', 'bob']) {
      const token = await addToken({ mode: 'local', persistTo: edge.persistTo }, user, { scopes: ['read'] });
      tokens[user] = token;
      netrc[user] = join(dir, `netrc-${user}`);
      writeFileSync(netrc[user]!, `machine 127.0.0.1 login ${user} password ${token}\n`);
    }
  }, 180_000);

  afterAll(async () => {
    await edge?.stop();
    await origin?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const copy = (user: string, paths: string[], to: string) => nixCopy({ from: edge.url, to: join(dir, to), paths, trustedKeys: publicKey, netrc: netrc[user] });

  /** Polls `eris usage` until it shows `want` NAR bytes per user (flushes happen every second). */
  async function usageSettles(want: Record<string, number>, timeoutMs = 10_000) {
    const deadline = Date.now() + timeoutMs;
    let got: Record<string, number> = {};
    while (Date.now() < deadline) {
      got = Object.fromEntries(erisUsage(['--state-dir', stateDir]).users.map((u) => [u.user ?? '', u.narBytesSent]));
      if (JSON.stringify(Object.entries(got).sort()) === JSON.stringify(Object.entries(want).sort())) return got;
      await new Promise((r) => setTimeout(r, 300));
    }
    return got;
  }

  let aliceBytes = 0;
  let bobBytes = 0;
  let bobPath = '';

  it('counts each user\'s NAR bytes as the sum of the NarSizes they fetched', async () => {
    const all = narSizes([fixture!.top]);
    // bob fetches the smallest closure of a path other than the top.
    bobPath = fixture!.closure.filter((p) => p !== fixture!.top).map((p) => [p, [...narSizes([p]).values()].reduce((a, b) => a + b, 0)] as const).sort((a, b) => a[1] - b[1])[0]![0];
    const bobSizes = narSizes([bobPath]);

    const a = await copy('alice', [fixture!.top], 'alice-store');
    expect(a.code, a.stderr).toBe(0);
    const b = await copy('bob', [bobPath], 'bob-store');
    expect(b.code, b.stderr).toBe(0);

    aliceBytes = [...all.values()].reduce((x, y) => x + y, 0);
    bobBytes = [...bobSizes.values()].reduce((x, y) => x + y, 0);
    expect(await usageSettles({ alice: aliceBytes, bob: bobBytes })).toEqual({ alice: aliceBytes, bob: bobBytes });

    const report = erisUsage(['--state-dir', stateDir, '--user', 'alice']);
    expect(report.users).toHaveLength(1);
    expect(report.users[0]).toMatchObject({ user: 'alice', nars: all.size, narBytesSent: aliceBytes });
    expect(report.users[0]!.narinfoHits).toBeGreaterThanOrEqual(all.size);
  });

  it('keeps the figures across a restart and adds to them', async () => {
    await origin.stop();
    origin = await startOrigin();
    expect(erisUsage(['--state-dir', stateDir]).totals.narBytesSent).toBe(aliceBytes + bobBytes);
    const again = await copy('bob', [bobPath], 'bob-store-2');
    expect(again.code, again.stderr).toBe(0);
    expect(await usageSettles({ alice: aliceBytes, bob: 2 * bobBytes })).toEqual({ alice: aliceBytes, bob: 2 * bobBytes });
  });

  it('prints a readable table and per-cache /metrics counters without user names', async () => {
    const text = execFileSync(process.execPath, ['--disable-warning=ExperimentalWarning', join(PROJECT_DIR, 'origin/cli.ts'), 'usage', '--state-dir', stateDir, '--since', '1d'], { encoding: 'utf8' });
    expect(text).toMatch(/^total\s+\d+/m);
    expect(text).toMatch(/^alice\s+\d+/m);
    expect(text).toMatch(/^bob\s+\d+/m);
    expect(text).toContain('top paths by NAR bytes sent');
    const metrics = await (await fetch(`${origin.url}/metrics`, { headers: { 'x-eris-edge-secret': SECRET } })).text();
    expect(metrics).toMatch(/^eris_cache_nar_bytes_total\{cache="default",direction="sent"\} \d+$/m);
    expect(metrics).not.toContain('alice');
  });

  const clientConfig = (args: string[]) =>
    execFileSync(process.execPath, ['--disable-warning=ExperimentalWarning', join(PROJECT_DIR, 'origin/cli.ts'), 'client-config', '--edge-url', edge.url, ...args], { encoding: 'utf8' });

  it('eris client-config prints nix.conf and netrc lines that let a fresh client copy with no other flag', async () => {
    const client = join(dir, 'fresh-client');
    mkdirSync(client);
    const netrcPath = join(client, 'netrc');
    const out = clientConfig(['--netrc', netrc.bob!, '--netrc-path', netrcPath]);
    // The nix.conf block is everything up to the first blank line; the netrc line starts with "machine".
    const nixConf = out.split('\n\n')[0]! + '\n';
    expect(nixConf).toContain(`extra-substituters = ${edge.url}/default\n`);
    expect(nixConf).toContain(`extra-trusted-public-keys = ${publicKey}\n`);
    expect(nixConf).toContain(`netrc-file = ${netrcPath}\n`);
    const netrcLine = out.split('\n').find((l) => l.startsWith('machine '))!;
    expect(netrcLine).toBe(`machine 127.0.0.1 login bob password ${tokens.bob}`);
    expect(out).toMatch(/^# Multi-user Nix: the nix-daemon \(root\) .*mode 0600/m);
    writeFileSync(join(client, 'nix.conf'), nixConf);
    writeFileSync(netrcPath, netrcLine + '\n');
    chmodSync(netrcPath, 0o600);

    const substituter = /^extra-substituters = (\S+)$/m.exec(nixConf)![1]!;
    const to = join(dir, 'fresh-client-store');
    // No --option at all: keys, netrc and substituter come from the pasted files (NIX_CONFIG emptied).
    const r = await runNix(['copy', '--from', substituter, '--to', to, fixture!.top], { env: { NIX_CONF_DIR: client, NIX_CONFIG: '' } });
    expect(r.code, r.stderr).toBe(0);
    for (const p of fixture!.closure) expect(existsSync(join(to, p))).toBe(true);

    // Without the netrc the same command fails: the pasted netrc is what made it work.
    writeFileSync(netrcPath, '');
    const denied = await runNix(['copy', '--from', substituter, '--to', join(dir, 'fresh-client-store-2'), fixture!.top], { env: { NIX_CONF_DIR: client, NIX_CONFIG: '' } });
    expect(denied.code).not.toBe(0);
  });

  it('eris client-config takes --token too, and says in one line when the token is refused', () => {
    const out = clientConfig(['--token', tokens.alice!]);
    expect(out).toContain(`machine 127.0.0.1 login alice password ${tokens.alice}`);
    expect(out).toContain('netrc-file = /etc/nix/netrc');
    let err = '';
    try {
      clientConfig(['--token', 'eris_not-a-token']);
    } catch (e) {
      err = String((e as { stderr: string }).stderr);
    }
    expect(err).toMatch(/^eris: .*401: the edge refused the token \(--token\)\n$/);
  });
});
