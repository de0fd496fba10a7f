/**
 * Usage accounting and client set-up as users meet them: `eris serve` with two
 * workers and a state directory, the Worker under `wrangler dev`, real
 * `nix copy` by two users with two tokens. `eris usage --json` must show each
 * user's NAR bytes equal to the NarSizes they fetched, keep them across a
 * restart, and count nothing twice. And `eris client-config` prints what a
 * fresh client pastes into nix.conf and netrc to copy with no other flag.
 */
import { beforeAll, describe, expect, inject, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { nixEnv, NIX_FLAGS, runNix } from '../helpers/nix.ts';
import { eris } from '../helpers/processes.ts';
import { nixCopyFrom, useStack } from '../helpers/stack.ts';

const fixture = inject('fixture');

/** NarSize of every path in the closures of `paths`, from the fixture store itself. */
function narSizes(paths: string[]): Map<string, number> {
  const out = execFileSync('nix', [...NIX_FLAGS, 'path-info', '--json', '--recursive', '--store', fixture!.root, ...paths], { env: nixEnv(), encoding: 'utf8' });
  const data = JSON.parse(out) as { path: string; narSize: number }[];
  return new Map(data.map((d) => [d.path, d.narSize]));
}

function erisUsage(args: string[]): { users: { user: string | null; nars: number; narBytesSent: number; narinfoHits: number }[]; totals: Record<string, number> } {
  const r = eris(['usage', '--json', ...args]);
  if (r.status !== 0) throw new Error(`eris usage: ${r.stderr}`);
  return JSON.parse(r.stdout);
}

describe.skipIf(!fixture)('usage accounting through the Worker, two origin workers', () => {
  let stateDir: string;
  const netrc: Record<string, string> = {};
  const tokens: Record<string, string> = {};
  const s = useStack(() => ({
    keyBy: 'nix',
    keyName: 'usage-cache-1',
    root(dir) {
      stateDir = join(dir, 'state');
      writeFileSync(join(dir, 'eris.toml'), `state_dir = "${stateDir}"\nworkers = 2\n`);
      return fixture!.root;
    },
    originArgs: (dir) => ['--config', join(dir, 'eris.toml')],
    tokens: { bob: { user: 'bob', scopes: ['read'] } },
  }));

  beforeAll(async () => {
    netrc.alice = s.netrc;
    tokens.alice = s.token;
    const token = s.tokens.bob!;
    tokens.bob = token;
    netrc.bob = join(s.dir, 'netrc-bob');
    writeFileSync(netrc.bob, `machine 127.0.0.1 login bob password ${token}\n`);
  });

  const copy = (user: string, paths: string[], to: string) => nixCopyFrom(s, { to: join(s.dir, to), paths, netrc: netrc[user] });

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
    await s.restartOrigin();
    expect(erisUsage(['--state-dir', stateDir]).totals.narBytesSent).toBe(aliceBytes + bobBytes);
    const again = await copy('bob', [bobPath], 'bob-store-2');
    expect(again.code, again.stderr).toBe(0);
    expect(await usageSettles({ alice: aliceBytes, bob: 2 * bobBytes })).toEqual({ alice: aliceBytes, bob: 2 * bobBytes });
  });

  it('prints a readable table and per-cache /metrics counters without user names', async () => {
    const text = eris(['usage', '--state-dir', stateDir, '--since', '1d']).stdout;
    expect(text).toMatch(/^total\s+\d+/m);
    expect(text).toMatch(/^alice\s+\d+/m);
    expect(text).toMatch(/^bob\s+\d+/m);
    expect(text).toContain('top paths by NAR bytes sent');
    const metrics = await (await s.direct('/metrics')).text();
    expect(metrics).toMatch(/^eris_cache_nar_bytes_total\{cache="default",direction="sent"\} \d+$/m);
    expect(metrics).not.toContain('alice');
  });

  const clientConfig = (args: string[]) => {
    const r = eris(['client-config', '--edge-url', s.edge.url, ...args]);
    if (r.status !== 0) throw Object.assign(new Error(r.stderr), { stderr: r.stderr });
    return r.stdout;
  };

  it('eris client-config prints nix.conf and netrc lines that let a fresh client copy with no other flag', async () => {
    const client = join(s.dir, 'fresh-client');
    mkdirSync(client);
    const netrcPath = join(client, 'netrc');
    const out = clientConfig(['--netrc', netrc.bob!, '--netrc-path', netrcPath]);
    // The nix.conf block is everything up to the first blank line; the netrc line starts with "machine".
    const nixConf = out.split('\n\n')[0]! + '\n';
    expect(nixConf).toContain(`extra-substituters = ${s.edge.url}/default\n`);
    expect(nixConf).toContain(`extra-trusted-public-keys = ${s.publicKey}\n`);
    expect(nixConf).toContain(`netrc-file = ${netrcPath}\n`);
    const netrcLine = out.split('\n').find((l) => l.startsWith('machine '))!;
    expect(netrcLine).toBe(`machine 127.0.0.1 login bob password ${tokens.bob}`);
    expect(out).toMatch(/^# Multi-user Nix: the nix-daemon \(root\) .*mode 0600/m);
    writeFileSync(join(client, 'nix.conf'), nixConf);
    writeFileSync(netrcPath, netrcLine + '\n');
    chmodSync(netrcPath, 0o600);

    const substituter = /^extra-substituters = (\S+)$/m.exec(nixConf)![1]!;
    const to = join(s.dir, 'fresh-client-store');
    // No --option at all: keys, netrc and substituter come from the pasted files (NIX_CONFIG emptied).
    const r = await runNix(['copy', '--from', substituter, '--to', to, fixture!.top], { env: { NIX_CONF_DIR: client, NIX_CONFIG: '' } });
    expect(r.code, r.stderr).toBe(0);
    for (const p of fixture!.closure) expect(existsSync(join(to, p))).toBe(true);

    // Without the netrc the same command fails: the pasted netrc is what made it work.
    writeFileSync(netrcPath, '');
    const denied = await runNix(['copy', '--from', substituter, '--to', join(s.dir, 'fresh-client-store-2'), fixture!.top], { env: { NIX_CONF_DIR: client, NIX_CONFIG: '' } });
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
