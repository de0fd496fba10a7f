import { availableParallelism } from 'node:os';
import { describe, expect, it } from 'vitest';
import { ConfigError, interpolate, parseConfigFile, resolveConfig } from './index.ts';

/** Each case throws a ConfigError of one line that matches its pattern. */
function expectConfigErrors(cases: [() => unknown, RegExp][]) {
  for (const [fn, re] of cases) {
    let err: unknown;
    try {
      fn();
    } catch (e) {
      err = e;
    }
    expect(err, String(re)).toBeInstanceOf(ConfigError);
    expect((err as Error).message).toMatch(re);
    expect((err as Error).message).not.toContain('\n');
  }
}

const env = { ERIS_EDGE_SECRET: 'from-env-secret-0123456789', HOME_DIR: '/var/lib/eris' };

describe('origin config', () => {
  it('reads TOML with ${VAR} interpolation and fills defaults', () => {
    const file = parseConfigFile(
      'bind = "127.0.0.1:9000"\nsign_key_paths = ["${HOME_DIR}/key.sec"]\nedge_secret = "${ERIS_EDGE_SECRET}"\npriority = 40\n',
      'eris.toml',
      env,
    );
    expect(resolveConfig({ file, env: {} })).toEqual({
      host: '127.0.0.1',
      port: 9000,
      storeRoot: '/',
      storeDir: '/nix/store',
      signKeyPaths: ['/var/lib/eris/key.sec'],
      edgeSecret: env.ERIS_EDGE_SECRET,
      priority: 40,
      dbBusyTimeoutMs: 2000,
      compression: 'none',
      compressionLevel: 3,
      narCacheDir: undefined,
      narCacheMaxBytes: 10 * 1024 ** 3,
      workers: 1,
      compressionMax: availableParallelism(),
      compressionQueue: 64,
      maxNarStreams: 256,
      maxPendingRequests: 1024,
      stateDir: undefined,
      usageRetentionDays: 90,
      caches: [{ name: 'default', publish: 'all', roots: [], exclude: [], signKeyPaths: ['/var/lib/eris/key.sec'], priority: 40 }],
      defaultCache: 'default',
      tempRoots: 'auto',
      minFreeBytes: 1024 ** 3,
    });
  });

  it('reads [[cache]] tables: own keys and priority, top-level ones as defaults, default_cache for the bare root', () => {
    const file = parseConfigFile(
      [
        'sign_key_paths = ["/k/top.sec"]', 'priority = 50', 'default_cache = "public"',
        '[[cache]]', 'name = "public"', 'roots = ["/nix/var/nix/profiles/system"]', 'exclude = ["*-secrets*"]',
        '[[cache]]', 'name = "team-a"', 'sign_key_paths = ["${HOME_DIR}/a.sec"]', 'priority = 10',
        '[[cache]]', 'name = "everything"', 'publish = "all"',
      ].join('\n'),
      'eris.toml',
      env,
    );
    const c = resolveConfig({ file, env });
    expect(c.caches).toEqual([
      { name: 'public', publish: 'roots', roots: ['/nix/var/nix/profiles/system'], exclude: ['*-secrets*'], signKeyPaths: ['/k/top.sec'], priority: 50 },
      { name: 'team-a', publish: 'roots', roots: [], exclude: [], signKeyPaths: ['/var/lib/eris/a.sec'], priority: 10 },
      { name: 'everything', publish: 'all', roots: [], exclude: [], signKeyPaths: ['/k/top.sec'], priority: 50 },
    ]);
    expect(c.defaultCache).toBe('public');
    // No default_cache: the only cache, else the one named default, else none.
    const two = (names: string[]) => resolveConfig({ file: { caches: names.map((name) => ({ name, sign_key_paths: ['/k'] })) }, env }).defaultCache;
    expect(two(['solo'])).toBe('solo');
    expect(two(['a', 'default'])).toBe('default');
    expect(two(['a', 'b'])).toBeUndefined();
    // Top-level keys may be left out when every cache has its own.
    expect(resolveConfig({ file: { caches: [{ name: 'a', sign_key_paths: ['/a'] }] }, env }).signKeyPaths).toEqual([]);
  });

  it('rejects bad [[cache]] tables with one line naming the key', () => {
    const bad = (caches: unknown, extra: Record<string, unknown> = {}) => () => resolveConfig({ file: { signKeyPaths: ['/k'], caches, ...extra } as never, env });
    const cases: [() => unknown, RegExp][] = [
      [bad([{ name: 'Team' }]), /^cache\[0\]\.name: expected 1-64 characters/],
      [bad([{ name: 'nar' }]), /^cache\[0\]\.name: "nar" is reserved/],
      [bad([{ name: 'a' }, { name: 'a' }]), /^cache\[1\]\.name: "a" names two caches$/],
      [bad([{ name: 'a', colour: 1 }]), /^cache\[0\]: unknown key "colour"/],
      [bad([{ name: 'a', publish: 'some' }]), /^cache\[0\]\.publish: expected "all" or "roots"$/],
      [bad([{ name: 'a', publish: 'all', roots: ['/x'] }]), /^cache\[0\]\.roots: not used with publish = "all"/],
      [bad([{ name: 'a', roots: ['relative/x'] }]), /^cache\[0\]\.roots\[0\]: expected an absolute path/],
      [bad([{ name: 'a', roots: '/x' }]), /^cache\[0\]\.roots: expected a list of strings$/],
      [bad([{ name: 'a', exclude: ['x/y'] }]), /^cache\[0\]\.exclude\[0\]: a pattern matches the name after the hash/],
      [bad([{ name: 'a', priority: -1 }]), /^cache\[0\]\.priority: expected a whole number/],
      [bad([{ name: 'a' }], { defaultCache: 'b' }), /^default_cache: no \[\[cache\]\] is named "b"/],
      [bad([]), /^cache: expected \[\[cache\]\] tables/],
      [bad([{ name: 'a', keep_days: 30 }]), /^cache\[0\]: keep_days and max_bytes need state_dir/],
      [bad([{ name: 'a', keep_days: 0 }], { stateDir: '/s' }), /^cache\[0\]\.keep_days: expected a whole number of days from 1 to 3650$/],
      [bad([{ name: 'a', keep_days: 120 }], { stateDir: '/s' }), /^cache\[0\]\.keep_days: 120 is longer than usage_retention_days \(90\)/],
      [bad([{ name: 'a', max_bytes: '50 furlongs' }], { stateDir: '/s' }), /^cache\[0\]\.max_bytes: expected a number of bytes/],
      [bad([{ name: 'a' }], { minFreeBytes: 'lots' }), /^min_free_bytes: expected a number of bytes/],
      [bad([{ name: 'a' }], { tempRoots: 'sometimes' }), /^temp_roots: expected "auto", "daemon", "local", "off"$/],
      [() => resolveConfig({ file: { caches: [{ name: 'a', sign_key_paths: ['/a'] }, { name: 'b' }] } as never, env }), /^sign_key_paths: at least one/],
    ];
    expectConfigErrors(cases);
  });

  it('reads retention keys: keep_days, max_bytes with units, min_free_bytes', () => {
    const file = parseConfigFile('sign_key_paths = ["/k"]\nstate_dir = "/s"\nmin_free_bytes = "2G"\n[[cache]]\nname = "ci"\nkeep_days = 30\nmax_bytes = "50 GiB"\n[[cache]]\nname = "r"\n', 'eris.toml', env);
    const c = resolveConfig({ file, env });
    expect(c.caches.map((x) => [x.name, x.keepDays, x.maxBytes])).toEqual([['ci', 30, 50 * 1024 ** 3], ['r', undefined, undefined]]);
    expect(c.minFreeBytes).toBe(2 * 1024 ** 3);
  });

  it('lets flags win over the file and takes the edge secret from $ERIS_EDGE_SECRET', () => {
    const file = parseConfigFile('bind = "127.0.0.1:9000"\nsign_key_paths = ["/k"]\n', 'eris.toml', env);
    const c = resolveConfig({ file, flags: { bind: '[::1]:9001' }, env });
    expect([c.host, c.port, c.edgeSecret]).toEqual(['::1', 9001, env.ERIS_EDGE_SECRET]);
  });

  it('keeps $$ as a literal dollar and leaves a lone $ alone', () => {
    expect(interpolate('a$$b$c', {}, 'k')).toBe('a$b$c');
  });

  it('fails with one line naming the key', () => {
    const cases: [() => unknown, RegExp][] = [
      [() => parseConfigFile('edge_secret = "${NOPE}"', 'e.toml', {}), /^edge_secret: environment variable NOPE is not set$/],
      [() => parseConfigFile('colour = "blue"', 'e.toml', {}), /unknown key "colour"/],
      [() => parseConfigFile('bind = ', 'e.toml', {}), /^e\.toml: /],
      [() => resolveConfig({ file: { bind: 'localhost', signKeyPaths: ['/k'] }, env }), /^bind: expected HOST:PORT/],
      [() => resolveConfig({ file: { signKeyPaths: ['/k'], priority: 'high' }, env }), /^priority: expected a whole number/],
      [() => resolveConfig({ file: { signKeyPaths: [] }, env }), /^sign_key_paths: at least one/],
      [() => resolveConfig({ file: { signKeyPaths: ['/k'] }, env: {} }), /^edge_secret: required/],
      [() => resolveConfig({ file: { signKeyPaths: ['/k'], edgeSecret: 'short' }, env: {} }), /at least 16/],
      [() => resolveConfig({ file: { signKeyPaths: ['/k'], edgeSecretFile: '/nonexistent/secret' }, env: {} }), /^edge_secret_file: cannot read \/nonexistent\/secret: ENOENT$/],
      [() => resolveConfig({ file: { signKeyPaths: ['/k'], compression: 'bzip2' }, env }), /^compression: expected "none", "zstd" or "xz"$/],
      [() => resolveConfig({ file: { signKeyPaths: ['/k'], compression: 'zstd', compressionLevel: 30 }, env }), /^compression_level: expected a whole number from 1 to 19$/],
      [() => resolveConfig({ file: { signKeyPaths: ['/k'], stateDir: '' }, env }), /^state_dir: expected a non-empty string$/],
      [() => resolveConfig({ file: { signKeyPaths: ['/k'], usageRetentionDays: 0 }, env }), /^usage_retention_days: expected a whole number from 1 to 3650$/],
    ];
    expectConfigErrors(cases);
  });
});
