/**
 * `eris doctor` as a user runs it, against a real origin (`eris serve` on the
 * fixture store Nix built) and a real edge (`wrangler dev`): a healthy setup
 * passes, broken ones get the right FAIL lines, and no secret is printed.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { addToken, PROJECT_DIR } from './tokens.ts';
import { writeKeyPair } from './keygen.ts';
import { netrcLookup, publicKeyFileFor } from './doctor.ts';
import { generateKeyPair } from '../shared/signing.ts';
import { parseSecretKey, renderSecretKey } from '../shared/keys.ts';
import { freePort, startEdge, startOriginCli, type EdgeProc, type OriginProc } from '../test/helpers/processes.ts';

const fixture = inject('fixture');
const SECRET = 'doctor-edge-secret-0123456789';
const WRONG_SECRET = 'doctor-wrong-secret-9876543210';

const doctor = (args: string[]) => {
  const r = spawnSync(process.execPath, ['--disable-warning=ExperimentalWarning', join(PROJECT_DIR, 'origin/cli.ts'), 'doctor', ...args], {
    encoding: 'utf8',
    timeout: 60_000,
    env: { ...process.env, ERIS_EDGE_SECRET: '' },
  });
  return { ...r, lines: r.stdout.trim().split('\n') };
};

describe('doctor helpers', () => {
  it('finds the public key file next to a secret key file', () => {
    expect(publicKeyFileFor('/etc/eris/signing-key.sec')).toBe('/etc/eris/signing-key.pub');
    expect(publicKeyFileFor('/etc/eris/key')).toBe('/etc/eris/key.pub');
  });

  it('reads netrc as curl does: the machine entry, else default', () => {
    const text = 'machine other login x password y\nmachine cache.example.org\n  login alice\n  password tok\ndefault login d password dd\n';
    expect(netrcLookup(text, 'cache.example.org')).toEqual({ login: 'alice', password: 'tok' });
    expect(netrcLookup(text, 'elsewhere')).toEqual({ login: 'd', password: 'dd' });
    expect(netrcLookup('machine a login b password c', 'z')).toBeUndefined();
  });
});

describe.skipIf(!fixture)('eris doctor against a real origin and edge', () => {
  let dir: string;
  let origin: OriginProc;
  let edge: EdgeProc;
  let token: string;
  let goodKey: string;
  let config: string;
  let netrc: string;

  const writeConfig = (name: string, o: { port: number; key: string; secret: string; root?: string }) => {
    const file = join(dir, name);
    writeFileSync(file, [
      `bind = "127.0.0.1:${o.port}"`,
      `store_root = "${o.root ?? fixture!.root}"`,
      `sign_key_paths = ["${o.key}"]`,
      `edge_secret = "${o.secret}"`,
      '',
    ].join('\n'));
    return file;
  };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'eris-doctor-'));
    goodKey = join(dir, 'good.sec');
    writeKeyPair('doctor-test-1', goodKey, join(dir, 'good.pub'));
    const port = await freePort();
    config = writeConfig('eris.toml', { port, key: goodKey, secret: SECRET });
    origin = await startOriginCli({ root: fixture!.root, keyFiles: [goodKey], edgeSecret: SECRET, port });
    edge = await startEdge({ originUrl: origin.url, edgeSecret: SECRET });
    token = await addToken({ mode: 'local', persistTo: edge.persistTo }, 'alice', { scopes: ['read'] });
    netrc = join(dir, 'netrc');
    writeFileSync(netrc, `machine 127.0.0.1 login alice password ${token}\n`, { mode: 0o600 });
  });

  afterAll(async () => {
    await edge?.stop();
    await origin?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('passes a healthy deployment, edge included, with one ok line per check', () => {
    const r = doctor(['--config', config, '--edge-url', edge.url, '--netrc', netrc]);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const pub = readFileSync(join(dir, 'good.pub'), 'utf8');
    expect(r.lines).toEqual([
      `ok   config: ${config}: bind 127.0.0.1:${origin.port}, store_root ${fixture!.root}, 1 signing key(s), 1 cache(s)`,
      `ok   key ${goodKey}: valid secret key; its public key is ${pub}`,
      `ok   key ${goodKey} permissions: mode 0600, not readable by other users`,
      `ok   key pair ${join(dir, 'good.pub')}: matches the secret key`,
      `ok   store: ${join(fixture!.root, 'nix/var/nix/db/db.sqlite')} opens read-only: ${fixture!.closure.length} valid paths`,
      'ok   cache default: the default cache (bare root), priority 30, 1 key(s); publishes every valid path',
      'skip push: off: set push_dir to accept `nix copy --to https://…` with write tokens',
      `ok   origin: ${origin.url} answers /health with the edge secret`,
      'ok   origin keys: the running origin signs with the configured key(s)',
      'ok   origin cache default: served with the configured key(s), priority 30',
      `ok   edge: ${edge.url}/nix-cache-info answers with the token (StoreDir: /nix/store)`,
      'ok   edge caching: Cache-Control: private, no-store',
      'ok   edge public key: the edge serves the configured public key(s)',
      'no problems found',
    ]);
    expect(r.stdout).not.toContain(token);
    expect(r.stdout).not.toContain(SECRET);
  });

  it('says which part is broken: world-readable key, mismatched pair, wrong edge secret, other key, refused token', () => {
    const other = join(dir, 'other.sec');
    writeKeyPair('doctor-other-1', other, join(dir, 'other.pub'));
    chmodSync(other, 0o644);
    writeFileSync(join(dir, 'other.pub'), readFileSync(join(dir, 'good.pub'))); // the pair no longer matches
    const broken = writeConfig('broken.toml', { port: origin.port, key: other, secret: WRONG_SECRET });
    const r = doctor(['--config', broken, '--edge-url', edge.url, '--token', 'eris_not-a-real-token', '--user', 'alice']);
    expect(r.status).toBe(1);
    const fails = r.lines.filter((l) => l.startsWith('FAIL'));
    expect(fails).toEqual([
      expect.stringMatching(new RegExp(`^FAIL key ${other} permissions: mode 0644: anyone on this machine can read the secret key; chmod 0600 .*root:adm 0640`)),
      expect.stringMatching(new RegExp(`^FAIL key pair ${join(dir, 'other.pub')}: does not belong to ${other}`)),
      `FAIL origin: ${origin.url} refused the configured edge secret (403): the running origin has another one; restart it after changing the secret, and give the Worker the same EDGE_SECRET`,
      expect.stringMatching(/^FAIL edge: the edge refused the token \(401\): unknown, revoked or expired/),
      expect.stringMatching(/^FAIL edge public key: the edge serves doctor-test-1:\S+, the config has doctor-other-1:\S+/),
    ]);
    expect(r.lines.at(-1)).toBe('5 problems found');
    expect(r.lines).toContain('ok   store: ' + join(fixture!.root, 'nix/var/nix/db/db.sqlite') + ` opens read-only: ${fixture!.closure.length} valid paths`);
    expect(r.stdout).not.toContain(WRONG_SECRET);
    expect(r.stdout).not.toContain('not-a-real-token');
    expect(r.stdout).not.toContain(readFileSync(other, 'utf8').split(':')[1]!);
  });

  it('says the origin is down when nothing answers at the configured bind', async () => {
    const down = writeConfig('down.toml', { port: await freePort(), key: goodKey, secret: SECRET });
    const r = doctor(['--config', down]);
    expect(r.status).toBe(1);
    expect(r.lines.filter((l) => l.startsWith('FAIL'))).toEqual([
      expect.stringMatching(/^FAIL origin: nothing answers at http:\/\/127\.0\.0\.1:\d+ \(ECONNREFUSED\): is `eris serve` running with this config\?$/),
    ]);
    expect(r.lines).toContain('skip edge: not checked; give --edge-url URL with --netrc FILE or --token TOKEN');
  });

  it('catches a corrupt key, a missing key, a missing store and a netrc without the host', () => {
    const a = parseSecretKey(generateKeyPair('doctor-corrupt-1').secret);
    const b = parseSecretKey(generateKeyPair('doctor-corrupt-1').secret);
    const corrupt = join(dir, 'corrupt.sec');
    writeFileSync(corrupt, renderSecretKey({ ...a, publicKey: b.publicKey }), { mode: 0o600 });
    const emptyNetrc = join(dir, 'empty-netrc');
    writeFileSync(emptyNetrc, 'machine elsewhere login x password y\n');
    const r = doctor([
      '--bind', `127.0.0.1:${origin.port}`, '--store-root', join(dir, 'no-store'), '--sign-key', corrupt, '--sign-key', join(dir, 'missing.sec'),
      '--edge-secret-file', join(dir, 'secret'), '--edge-url', edge.url, '--netrc', emptyNetrc,
    ]);
    // The edge secret file does not exist yet: the config itself fails first.
    expect(r.status).toBe(1);
    expect(r.lines[0]).toMatch(/^FAIL config: edge_secret_file: cannot read .*secret: ENOENT$/);

    writeFileSync(join(dir, 'secret'), SECRET + '\n', { mode: 0o600 });
    const r2 = doctor([
      '--bind', `127.0.0.1:${origin.port}`, '--store-root', join(dir, 'no-store'), '--sign-key', corrupt, '--sign-key', join(dir, 'missing.sec'),
      '--edge-secret-file', join(dir, 'secret'), '--edge-url', edge.url, '--netrc', emptyNetrc,
    ]);
    expect(r2.status).toBe(1);
    const fails = r2.lines.filter((l) => l.startsWith('FAIL'));
    expect(fails).toEqual([
      `FAIL key ${corrupt}: not a usable Nix secret key: secret key "doctor-corrupt-1" is corrupt: its public half does not match its seed`,
      `FAIL key ${join(dir, 'missing.sec')}: the file does not exist (make one with \`eris keygen NAME\` or \`nix-store --generate-binary-cache-key\`)`,
      `FAIL store: no Nix store at ${join(dir, 'no-store', 'nix/store')} (store_root = ${join(dir, 'no-store')})`,
      `FAIL netrc: ${emptyNetrc} has no "machine 127.0.0.1 … password …" line; Nix would send no token`,
    ]);
    // The origin itself is fine; its keys are not compared with broken ones.
    expect(r2.lines).toContain(`ok   origin: ${origin.url} answers /health with the edge secret`);
  });

  it('refuses contradictory flags with exit 2', () => {
    for (const args of [['--edge-url', 'http://x'], ['--token', 't'], ['--edge-url', 'http://x', '--token', 't', '--netrc', 'n'], ['--bogus']]) {
      const r = doctor(args);
      expect({ args, status: r.status }).toEqual({ args, status: 2 });
    }
  });
});
