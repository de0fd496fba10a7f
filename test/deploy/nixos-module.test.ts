/**
 * deploy/nixos/module.nix evaluated for real: nixpkgs' own lib/ (lib.evalModules), with the few
 * NixOS options the module sets declared as loosely as NixOS declares them
 * (deploy/nixos/tests/eval.nix). Checks the rendered units and the generated eris.toml against
 * what docs/deployment.md promises, runs that file through the origin's own config parser, and
 * shows that a misspelled or wrongly typed option fails the evaluation.
 */
import { describe, it, expect } from 'vitest';
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { stringify as toToml } from 'smol-toml';
import { parseConfigFile, resolveConfig } from '../../origin/config/index.ts';

const REPO = resolve(new URL('../..', import.meta.url).pathname);
const HARNESS = join(REPO, 'deploy/nixos/tests/eval.nix');
const MODULE = join(REPO, 'deploy/nixos/module.nix');

/**
 * nixpkgs' lib/: $ERIS_NIXPKGS_LIB, else shared/ beside the clone (CI: /work/shared next to
 * /work/main), or two levels up for a git worktree in a sibling directory.
 */
function findNixpkgsLib(): string | undefined {
  const candidates = [
    process.env.ERIS_NIXPKGS_LIB,
    join(REPO, '../shared/nixpkgs-lib/lib'),
    join(REPO, '../../shared/nixpkgs-lib/lib'),
  ].filter((p): p is string => !!p);
  return candidates.find((p) => existsSync(join(p, 'modules.nix')));
}
const LIB = findNixpkgsLib();
const hasNixInstantiate = spawnSync('nix-instantiate', ['--version'], { stdio: 'ignore' }).error === undefined;
const ci = process.env.CI === 'true';

if (ci && !LIB) {
  throw new Error(`nixpkgs lib/ not found: expected ${join(REPO, '../shared/nixpkgs-lib/lib')} (a copy of shared/ beside the clone) or $ERIS_NIXPKGS_LIB`);
}
if (ci && !hasNixInstantiate) throw new Error('nix-instantiate not found (CI=true: the NixOS module must be evaluated)');

const ERIS_PKG = { type: 'derivation', name: 'eris', outPath: '/nix/store/11111111111111111111111111111111-eris' };
const BASE = {
  enable: true,
  package: ERIS_PKG,
  signKeyPaths: ['/etc/eris/signing-key.sec'],
  environmentFile: '/etc/eris/eris.env',
};

interface Unit {
  description: string;
  wantedBy: string[];
  after: string[];
  wants: string[];
  path: string[];
  serviceConfig: Record<string, unknown>;
}
interface Evaluated {
  services: Record<string, Unit>;
  nixSettings: Record<string, unknown>;
  users: { users: Record<string, unknown>; groups: Record<string, unknown> };
  firewall: { extraCommands: string; allowedTCPPorts: number[] };
  tmpfiles: string[];
  warnings: string[];
}

function evaluate(config: unknown, modulePath = MODULE): { ok: true; value: Evaluated } | { ok: false; error: string } {
  const r = spawnSync(
    'nix-instantiate',
    ['--read-write-mode', '--eval', '--strict', '--json', HARNESS,
      '--argstr', 'libPath', LIB!, '--argstr', 'configJSON', JSON.stringify(config), '--arg', 'modulePath', modulePath],
    { encoding: 'utf8', env: { ...process.env, NIX_REMOTE: '' }, timeout: 60_000 },
  );
  if (r.status !== 0) return { ok: false, error: r.stderr };
  return { ok: true, value: JSON.parse(r.stdout) as Evaluated };
}

function evalOk(eris: Record<string, unknown>, extra: Record<string, unknown> = {}): Evaluated {
  const r = evaluate({ services: { eris: { ...BASE, ...eris } }, ...extra });
  if (!r.ok) throw new Error(r.error);
  return r.value;
}

/** The file a unit's `--config FILE` names, as written by the harness's formats.*.generate (JSON). */
function configOf(unit: Unit): Record<string, unknown> {
  const m = /--config (\/nix\/store\/[a-z0-9]{32}-[^ ]+)/.exec(String(unit.serviceConfig.ExecStart));
  expect(m, String(unit.serviceConfig.ExecStart)).not.toBeNull();
  return JSON.parse(readFileSync(m![1]!, 'utf8'));
}

/** What the origin makes of the generated eris.toml (nixpkgs writes it with remarshal, JSON → TOML). */
function originReads(settings: Record<string, unknown>) {
  const env = { ERIS_EDGE_SECRET: 'module-test-secret-0123456789' };
  return resolveConfig({ file: parseConfigFile(toToml(settings), 'eris.toml', env), env, readFile: () => '' });
}

describe.skipIf(!LIB || !hasNixInstantiate)('deploy/nixos/module.nix under lib.evalModules', () => {
  describe('the default configuration (docs/deployment.md, "NixOS")', () => {
    const out = evalOk({});
    const unit = out.services.eris!;
    const sc = unit.serviceConfig;

    it('runs `eris serve --config <generated eris.toml>` from the package, after the read-only sqlite3 open', () => {
      expect(sc.ExecStart).toMatch(/^\/nix\/store\/11111111111111111111111111111111-eris\/bin\/eris serve --config \/nix\/store\/[a-z0-9]{32}-eris\.toml$/);
      expect(sc.ExecStartPre).toBe("+/nix/store/00000000000000000000000000000000-sqlite-3.46.1/bin/sqlite3 -readonly /nix/var/nix/db/db.sqlite 'SELECT 1 FROM ValidPaths LIMIT 0'");
      expect(unit.wantedBy).toEqual(['multi-user.target']);
      expect(unit.path).toEqual(['/nix/store/00000000000000000000000000000000-xz-5.6.3']);
      expect(sc).toMatchObject({ Type: 'simple', Restart: 'on-failure' });
    });

    it('runs as a dynamic user eris in group adm (for the keys), with the EnvironmentFile', () => {
      expect(sc).toMatchObject({ DynamicUser: true, User: 'eris', Group: 'eris', SupplementaryGroups: ['adm'] });
      expect(sc.EnvironmentFile).toEqual(['/etc/eris/eris.env']);
      expect(out.users.groups).toHaveProperty('adm');
      expect(out.users.users).toEqual({});
    });

    it('is sandboxed: read-only system and store, /var/cache/eris and /var/lib/eris the only writable places', () => {
      expect(sc).toMatchObject({
        ProtectSystem: 'strict',
        ProtectHome: true,
        PrivateTmp: true,
        PrivateDevices: true,
        NoNewPrivileges: true,
        CapabilityBoundingSet: '',
        RestrictAddressFamilies: ['AF_INET', 'AF_INET6', 'AF_UNIX'],
        SystemCallFilter: ['@system-service', '~@privileged'],
        MemoryDenyWriteExecute: false, // Node's JIT
        UMask: '0077',
        CacheDirectory: 'eris',
        StateDirectory: 'eris',
        ReadOnlyPaths: ['-/nix/store', '-/nix/var/nix/db'],
      });
      expect(sc.ReadWritePaths).toEqual([]);
    });

    it('generates the eris.toml the docs describe, and the origin accepts it', () => {
      const settings = configOf(unit);
      expect(settings).toEqual({
        bind: '127.0.0.1:8788',
        store_root: '/',
        sign_key_paths: ['/etc/eris/signing-key.sec'],
        priority: 30,
        state_dir: '/var/lib/eris',
        usage_retention_days: 90,
      });
      expect(originReads(settings)).toMatchObject({ host: '127.0.0.1', port: 8788, storeRoot: '/', priority: 30, stateDir: '/var/lib/eris', usageRetentionDays: 90 });
    });

    it('has no tunnel and opens no port', () => {
      expect(Object.keys(out.services)).toEqual(['eris']);
      expect(out.firewall.extraCommands).toBe('');
      expect(out.warnings).toEqual([]);
    });

    it('turns on the metrics listener with metricsBind, and the origin accepts it', () => {
      const settings = configOf(evalOk({ metricsBind: '127.0.0.1:9102' }).services.eris!);
      expect(settings).toMatchObject({ metrics_bind: '127.0.0.1:9102' });
      expect(originReads(settings)).toMatchObject({ metricsBind: { host: '127.0.0.1', port: 9102 } });
      expect(configOf(unit)).not.toHaveProperty('metrics_bind');
    });

    it('passes extraConfig through, overriding generated keys', () => {
      const settings = configOf(evalOk({ extraConfig: { compression: 'zstd', nar_cache_dir: '/var/cache/eris', workers: 2 } }).services.eris!);
      expect(settings).toMatchObject({ compression: 'zstd', nar_cache_dir: '/var/cache/eris', workers: 2 });
      expect(originReads(settings)).toMatchObject({ compression: 'zstd', narCacheDir: '/var/cache/eris', workers: 2 });
    });
  });

  describe('the tunnel configuration', () => {
    const out = evalOk({
      bind: '127.0.0.1:9000',
      cloudflared: { enable: true, tunnelId: '6ff42ae2-765d-4adf-8112-31c55c1551ef', credentialsFile: '/etc/eris/tunnel.json', hostname: 'eris-origin.example.com' },
    });
    const tunnel = out.services['eris-cloudflared']!;

    it('runs cloudflared after the origin with the credentials handed over by LoadCredential', () => {
      expect(tunnel.after).toEqual(['network-online.target', 'eris.service']);
      expect(tunnel.serviceConfig.ExecStart).toMatch(/^\/nix\/store\/0{32}-cloudflared-[^/]+\/bin\/cloudflared tunnel --no-autoupdate --config \/nix\/store\/[a-z0-9]{32}-eris-cloudflared\.yml run$/);
      expect(tunnel.serviceConfig).toMatchObject({
        LoadCredential: ['credentials.json:/etc/eris/tunnel.json'],
        DynamicUser: true,
        ProtectSystem: 'strict',
        MemoryDenyWriteExecute: true,
      });
    });

    it('forces HTTP/2 and routes the hostname to the origin\'s loopback address, then 404s', () => {
      expect(configOf(tunnel)).toEqual({
        tunnel: '6ff42ae2-765d-4adf-8112-31c55c1551ef',
        'credentials-file': '/run/credentials/eris-cloudflared.service/credentials.json',
        protocol: 'http2',
        'no-autoupdate': true,
        ingress: [
          { hostname: 'eris-origin.example.com', service: 'http://127.0.0.1:9000', originRequest: { connectTimeout: '10s' } },
          { service: 'http_status:404' },
        ],
      });
    });

    it('needs the tunnel id, credentials and hostname', () => {
      const r = evaluate({ services: { eris: { ...BASE, cloudflared: { enable: true } } } });
      expect(r.ok).toBe(false);
      expect(!r.ok && r.error).toContain('services.eris.cloudflared needs tunnelId, credentialsFile and hostname.');
    });
  });

  describe('the several-caches configuration', () => {
    const out = evalOk({
      defaultCache: 'team-a',
      caches: {
        'team-a': { roots: ['/nix/var/nix/profiles/system'], signKeyPaths: ['/etc/eris/team-a.sec'] },
        ci: { exclude: ['*-secrets*'], priority: 20, publish: 'all', keepDays: 30, maxBytes: '200G' },
      },
    });

    it('writes one [[cache]] table per cache, each with its keys and priority (or the top-level ones) and its retention', () => {
      const settings = configOf(out.services.eris!);
      expect(settings).toMatchObject({ default_cache: 'team-a', sign_key_paths: ['/etc/eris/signing-key.sec'], priority: 30 });
      expect(settings.cache).toEqual([
        { name: 'ci', roots: [], exclude: ['*-secrets*'], sign_key_paths: ['/etc/eris/signing-key.sec'], priority: 20, publish: 'all', keep_days: 30, max_bytes: '200G' },
        { name: 'team-a', roots: ['/nix/var/nix/profiles/system'], exclude: [], sign_key_paths: ['/etc/eris/team-a.sec'], priority: 30, publish: 'roots' },
      ]);
      // TOML as nixpkgs writes it: [[cache]] tables, as the origin reads them.
      expect(toToml(settings)).toMatch(/^\[\[cache\]\]$/m);
      const read = originReads(settings);
      expect(read.defaultCache).toBe('team-a');
      expect(read.caches).toEqual([
        { name: 'ci', publish: 'all', roots: [], exclude: ['*-secrets*'], signKeyPaths: ['/etc/eris/signing-key.sec'], priority: 20, keepDays: 30, maxBytes: 200 * 1024 ** 3 },
        { name: 'team-a', publish: 'roots', roots: ['/nix/var/nix/profiles/system'], exclude: [], signKeyPaths: ['/etc/eris/team-a.sec'], priority: 30 },
      ]);
    });

    it('without caches, the origin serves one cache `default` publishing the whole store', () => {
      expect(originReads(configOf(evalOk({}).services.eris!)).caches).toEqual([
        { name: 'default', publish: 'all', roots: [], exclude: [], signKeyPaths: ['/etc/eris/signing-key.sec'], priority: 30 },
      ]);
    });

    it('refuses a cache name the URL scheme cannot have, and an unknown defaultCache', () => {
      const bad = evaluate({ services: { eris: { ...BASE, caches: { nar: {} } } } });
      expect(!bad.ok && bad.error).toContain('services.eris.caches: names must match');
      const unknown = evaluate({ services: { eris: { ...BASE, defaultCache: 'x', caches: { a: {} } } } });
      expect(!unknown.ok && unknown.error).toContain('services.eris.defaultCache must name one of services.eris.caches.');
      const allWithRoots = evaluate({ services: { eris: { ...BASE, caches: { a: { publish: 'all', roots: ['/x'] } } } } });
      expect(!allWithRoots.ok && allWithRoots.error).toContain('a cache with publish = "all" publishes every valid path; it takes no roots.');
    });
  });

  describe('the push configuration', () => {
    const out = evalOk({ push: { enable: true, publicKeys: ['cache.example.com-1:8Ku6sSR6QwQmzJdPYjvN3TbgZVhDXnHiaE4Y5Y3wz1g='] }, caches: { 'team-a': {}, ci: {} }, defaultCache: 'team-a' });
    const sc = out.services.eris!.serviceConfig;

    it('runs as the static user eris (GC roots keep an owner), still sandboxed, writing only the GC-root directory and /var/lib/eris', () => {
      expect(sc).toMatchObject({ DynamicUser: false, User: 'eris', Group: 'eris', SupplementaryGroups: ['adm'], ProtectSystem: 'strict', NoNewPrivileges: true, StateDirectory: 'eris' });
      expect(sc.ReadWritePaths).toEqual(['/nix/var/nix/gcroots/eris']);
      expect(out.users.users).toEqual({ eris: { isSystemUser: true, group: 'eris', extraGroups: ['adm'], description: 'eris Nix binary cache origin', home: '/var/empty', createHome: false } });
      expect(out.users.groups).toHaveProperty('eris');
      expect(out.tmpfiles).toEqual(['d /nix/var/nix/gcroots/eris 0755 eris eris -', 'd /nix/var/nix/gcroots/eris/ci 0755 eris eris -', 'd /nix/var/nix/gcroots/eris/team-a 0755 eris eris -']);
      expect(out.services.eris!.path).toEqual(['/nix/store/00000000000000000000000000000000-xz-5.6.3', '/nix/store/00000000000000000000000000000000-nix-2.24.10']);
    });

    it('imports through the daemon, which trusts the caches\' keys (in addition to cache.nixos.org\'s)', () => {
      const settings = configOf(out.services.eris!);
      expect(settings).toMatchObject({ push_dir: '/var/lib/eris/push', push_store: 'daemon', push_trust: 'signature' });
      expect(originReads(settings).push).toMatchObject({ dir: '/var/lib/eris/push', storeUri: 'daemon', trust: 'signature' });
      expect(out.nixSettings['extra-trusted-public-keys']).toEqual(['cache.example.com-1:8Ku6sSR6QwQmzJdPYjvN3TbgZVhDXnHiaE4Y5Y3wz1g=']);
      expect(out.nixSettings['trusted-public-keys']).toEqual(['cache.nixos.org-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY=']);
      expect(out.nixSettings['trusted-users']).toEqual(['root']);
    });

    it('with trust = "no-check-sigs", makes eris a trusted user instead', () => {
      const o = evalOk({ push: { enable: true, trust: 'no-check-sigs' } });
      expect(configOf(o.services.eris!)).toMatchObject({ push_trust: 'no-check-sigs' });
      expect(originReads(configOf(o.services.eris!)).push).toMatchObject({ trust: 'no-check-sigs' });
      expect(o.nixSettings['trusted-users']).toEqual(['eris']);
      expect(o.nixSettings).not.toHaveProperty('extra-trusted-public-keys');
    });

    it('needs the public keys when the daemon checks signatures', () => {
      const r = evaluate({ services: { eris: { ...BASE, push: { enable: true } } } });
      expect(!r.ok && r.error).toContain('services.eris.push: with trust = "signature", set publicKeys');
    });

    it('without push, writes no GC roots and leaves the Nix settings alone', () => {
      const o = evalOk({});
      expect(o.tmpfiles).toEqual([]);
      expect(o.nixSettings).toEqual({ 'trusted-users': ['root'], 'trusted-public-keys': ['cache.nixos.org-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY='] });
      expect(configOf(o.services.eris!)).not.toHaveProperty('push_dir');
      expect(originReads(configOf(o.services.eris!)).push).toBeUndefined();
    });
  });

  describe('direct mode', () => {
    it('defaults to every range in deploy/cloudflare-ips.txt', () => {
      const ranges = readFileSync(join(REPO, 'deploy/cloudflare-ips.txt'), 'utf8').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
      expect(ranges.length).toBeGreaterThan(10);
      const rules = evalOk({ bind: '0.0.0.0:8788', openFirewallForCloudflare: true }).firewall.extraCommands.trim().split('\n');
      expect(rules.map((r) => / -s (\S+) /.exec(r)![1]).sort()).toEqual([...ranges].sort());
    });

    it('warns when the origin binds to loopback', () => {
      expect(evalOk({ openFirewallForCloudflare: true }).warnings.join('\n')).toContain('binds to loopback');
    });

    it('admits Cloudflare\'s ranges to the origin\'s port only', () => {
      const out = evalOk({ bind: '0.0.0.0:8788', openFirewallForCloudflare: true, cloudflareRanges: ['173.245.48.0/20', '2400:cb00::/32'] });
      expect(out.firewall.extraCommands).toBe(
        'iptables -w -A nixos-fw -p tcp -s 173.245.48.0/20 --dport 8788 -j nixos-fw-accept\n' +
          'ip6tables -w -A nixos-fw -p tcp -s 2400:cb00::/32 --dport 8788 -j nixos-fw-accept\n',
      );
    });
  });

  describe('mistakes fail the evaluation', () => {
    it('a misspelled option of the module', () => {
      const r = evaluate({ services: { eris: { ...BASE, signKeyPath: ['/etc/eris/k.sec'] } } });
      expect(r.ok).toBe(false);
      expect(!r.ok && r.error).toMatch(/The option `services\.eris\.signKeyPath' does not exist/);
    });

    it('a misspelled option inside a cache', () => {
      const r = evaluate({ services: { eris: { ...BASE, caches: { a: { root: ['/x'] } } } } });
      expect(!r.ok && r.error).toMatch(/The option `services\.eris\.caches\.a\.root' does not exist/);
    });

    it('a wrongly typed option', () => {
      const r = evaluate({ services: { eris: { ...BASE, priority: 'high' } } });
      expect(!r.ok && r.error).toMatch(/services\.eris\.priority' is not of type `integer between 0 and 1000000/);
      const p = evaluate({ services: { eris: { ...BASE, caches: { a: { publish: 'some' } } } } });
      expect(!p.ok && p.error).toMatch(/services\.eris\.caches\.a\.publish' is not of type `one of "roots", "all"'/);
    });

    it('a missing option (no signing key)', () => {
      const r = evaluate({ services: { eris: { ...BASE, signKeyPaths: [] } } });
      expect(!r.ok && r.error).toContain('services.eris.signKeyPaths needs at least one secret key file');
    });

    it('the module setting a NixOS option that does not exist (a copy with serviceConfig misspelled)', () => {
      const dir = mkdtempSync(join(tmpdir(), 'eris-module-'));
      try {
        mkdirSync(join(dir, 'nixos'));
        copyFileSync(join(REPO, 'deploy/cloudflare-ips.txt'), join(dir, 'cloudflare-ips.txt'));
        const text = readFileSync(MODULE, 'utf8');
        expect(text).toContain('serviceConfig = hardening // {');
        const broken = join(dir, 'nixos/module.nix');
        writeFileSync(broken, text.replace('serviceConfig = hardening // {', 'serviceConfg = hardening // {'));
        const r = evaluate({ services: { eris: BASE } }, broken);
        expect(!r.ok && r.error).toMatch(/The option `systemd\.services\.eris\.serviceConfg' does not exist/);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  });
});
