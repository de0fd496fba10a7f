/**
 * `eris doctor` as a user runs it, against a real origin (`eris serve` on the
 * fixture store Nix built) and a real edge (`wrangler dev`): a healthy setup
 * passes, broken ones get the right FAIL lines, and no secret is printed.
 */
import { describe, expect, inject, it } from 'vitest';
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeKeyPair } from '../keygen.ts';
import { publicKeyFileFor } from './index.ts';
import { generateKeyPair } from '../../../shared/signing.ts';
import { parseSecretKey, renderSecretKey } from '../../../shared/keys.ts';
import { eris, freePort } from '../../../test/helpers/processes.ts';
import { useSharedStack } from '../../../test/helpers/shared-stack.ts';

const fixture = inject('fixture');
const WRONG_SECRET = 'doctor-wrong-secret-9876543210';

const doctor = (args: string[]) => {
  const r = eris(['doctor', ...args], { env: { ...process.env, ERIS_EDGE_SECRET: '' } });
  return { ...r, lines: r.stdout.trim().split('\n') };
};

describe('doctor helpers', () => {
  it('finds the public key file next to a secret key file', () => {
    expect(publicKeyFileFor('/etc/eris/signing-key.sec')).toBe('/etc/eris/signing-key.pub');
    expect(publicKeyFileFor('/etc/eris/key')).toBe('/etc/eris/key.pub');
  });
});

describe.skipIf(!fixture)('eris doctor against a real origin and edge', () => {
  const s = useSharedStack();
  const writeConfig = (name: string, o: { port: number; key: string; secret: string; root?: string }) => {
    const file = join(s.dir, name);
    writeFileSync(file, [
      `bind = "127.0.0.1:${o.port}"`,
      `store_root = "${o.root ?? fixture!.root}"`,
      `sign_key_paths = ["${o.key}"]`,
      `edge_secret = "${o.secret}"`,
      '',
    ].join('\n'));
    return file;
  };
  const healthyConfig = () => writeConfig('eris.toml', { port: s.origin.port, key: s.keyFile, secret: s.secret });

  it('passes a healthy deployment, edge included, with one ok line per check', () => {
    const config = healthyConfig();
    const r = doctor(['--config', config, '--edge-url', s.edge.url, '--netrc', s.netrc]);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const pub = readFileSync(s.publicKeyFile, 'utf8');
    expect(r.lines).toEqual([
      `ok   config: ${config}: bind 127.0.0.1:${s.origin.port}, store_root ${fixture!.root}, 1 signing key(s), 1 cache(s)`,
      `ok   key ${s.keyFile}: valid secret key; its public key is ${pub}`,
      `ok   key ${s.keyFile} permissions: mode 0600, not readable by other users`,
      `ok   key pair ${s.publicKeyFile}: matches the secret key`,
      `ok   store: ${join(fixture!.root, 'nix/var/nix/db/db.sqlite')} opens read-only: ${fixture!.closure.length} valid paths`,
      'ok   cache default: the default cache (bare root), priority 30, 1 key(s); publishes every valid path',
      'skip push: off: set push_dir to accept `nix copy --to https://…` with write tokens',
      'skip usage: not recorded: set state_dir (e.g. /var/lib/eris) for `eris usage`',
      expect.stringMatching(new RegExp(`^ok   disk space store: ${join(fixture!.root, 'nix/store')}: \\d+\\.\\d \\w+ free of \\d+\\.\\d \\w+$`)),
      'ok   temporary GC roots: this user owns the store: NARs being served are held through a private nix-daemon on it',
      `ok   origin: ${s.origin.url} answers /health with the edge secret`,
      'ok   origin keys: the running origin signs with the configured key(s)',
      'ok   origin cache default: served with the configured key(s), priority 30',
      `ok   edge: ${s.edge.url}/nix-cache-info answers with the token (StoreDir: /nix/store)`,
      'ok   edge caching: Cache-Control: private, no-store',
      'ok   edge cache default: priority 30, 1 key(s) from every origin, this box\'s included',
      'ok   edge public key: the edge serves the configured public key(s)',
      'no problems found',
    ]);
    expect(r.stdout).not.toContain(s.token);
    expect(r.stdout).not.toContain(s.secret);
  });

  it('says which part is broken: world-readable key, mismatched pair, wrong edge secret, other key, refused token', () => {
    const other = join(s.dir, 'other.sec');
    writeKeyPair('doctor-other-1', other, join(s.dir, 'other.pub'));
    chmodSync(other, 0o644);
    writeFileSync(join(s.dir, 'other.pub'), readFileSync(s.publicKeyFile)); // the pair no longer matches
    const broken = writeConfig('broken.toml', { port: s.origin.port, key: other, secret: WRONG_SECRET });
    const r = doctor(['--config', broken, '--edge-url', s.edge.url, '--token', 'eris_not-a-real-token', '--user', 'alice']);
    expect(r.status).toBe(1);
    const fails = r.lines.filter((l) => l.startsWith('FAIL'));
    expect(fails).toEqual([
      expect.stringMatching(new RegExp(`^FAIL key ${other} permissions: mode 0644: anyone on this machine can read the secret key; chmod 0600 .*root:adm 0640`)),
      expect.stringMatching(new RegExp(`^FAIL key pair ${join(s.dir, 'other.pub')}: does not belong to ${other}`)),
      `FAIL origin: ${s.origin.url} refused the configured edge secret (403): the running origin has another one; restart it after changing the secret, and give the Worker the same EDGE_SECRET`,
      expect.stringMatching(/^FAIL edge: the edge refused the token \(401\): unknown, revoked or expired/),
      expect.stringMatching(new RegExp(`^FAIL edge public key: the edge serves ${s.publicKey.split(':')[0]}:\\S+, the config has doctor-other-1:\\S+`)),
    ]);
    expect(r.lines.at(-1)).toBe('5 problems found');
    expect(r.lines).toContain('ok   store: ' + join(fixture!.root, 'nix/var/nix/db/db.sqlite') + ` opens read-only: ${fixture!.closure.length} valid paths`);
    expect(r.stdout).not.toContain(WRONG_SECRET);
    expect(r.stdout).not.toContain('not-a-real-token');
    expect(r.stdout).not.toContain(readFileSync(other, 'utf8').split(':')[1]!);
  });

  it('says the origin is down when nothing answers at the configured bind', async () => {
    const down = writeConfig('down.toml', { port: await freePort(), key: s.keyFile, secret: s.secret });
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
    const corrupt = join(s.dir, 'corrupt.sec');
    writeFileSync(corrupt, renderSecretKey({ ...a, publicKey: b.publicKey }), { mode: 0o600 });
    const emptyNetrc = join(s.dir, 'empty-netrc');
    writeFileSync(emptyNetrc, 'machine elsewhere login x password y\n');
    const r = doctor([
      '--bind', `127.0.0.1:${s.origin.port}`, '--store-root', join(s.dir, 'no-store'), '--sign-key', corrupt, '--sign-key', join(s.dir, 'missing.sec'),
      '--edge-secret-file', join(s.dir, 'secret'), '--edge-url', s.edge.url, '--netrc', emptyNetrc,
    ]);
    // The edge secret file does not exist yet: the config itself fails first.
    expect(r.status).toBe(1);
    expect(r.lines[0]).toMatch(/^FAIL config: edge_secret_file: cannot read .*secret: ENOENT$/);

    writeFileSync(join(s.dir, 'secret'), s.secret + '\n', { mode: 0o600 });
    const r2 = doctor([
      '--bind', `127.0.0.1:${s.origin.port}`, '--store-root', join(s.dir, 'no-store'), '--sign-key', corrupt, '--sign-key', join(s.dir, 'missing.sec'),
      '--edge-secret-file', join(s.dir, 'secret'), '--edge-url', s.edge.url, '--netrc', emptyNetrc,
    ]);
    expect(r2.status).toBe(1);
    const fails = r2.lines.filter((l) => l.startsWith('FAIL'));
    expect(fails).toEqual([
      `FAIL key ${corrupt}: not a usable Nix secret key: secret key "doctor-corrupt-1" is corrupt: its public half does not match its seed`,
      `FAIL key ${join(s.dir, 'missing.sec')}: the file does not exist (make one with \`eris keygen NAME\` or \`nix-store --generate-binary-cache-key\`)`,
      `FAIL store: no Nix store at ${join(s.dir, 'no-store', 'nix/store')} (store_root = ${join(s.dir, 'no-store')})`,
      `FAIL netrc: ${emptyNetrc} has no "machine 127.0.0.1 … password …" line; Nix would send no token`,
    ]);
    // The origin itself is fine; its keys are not compared with broken ones.
    expect(r2.lines).toContain(`ok   origin: ${s.origin.url} answers /health with the edge secret`);
  });

  it('refuses contradictory flags with exit 2', () => {
    for (const args of [['--edge-url', 'http://x'], ['--token', 't'], ['--edge-url', 'http://x', '--token', 't', '--netrc', 'n'], ['--bogus']]) {
      const r = doctor(args);
      expect({ args, status: r.status }).toEqual({ args, status: 2 });
    }
  });
});
