/** The `eris` command as a user types it. */
import { beforeAll, describe, expect, inject, it } from 'vitest';
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { nixEnv, NIX_FLAGS } from '../../test/helpers/nix.ts';
import { eris, freePort } from '../../test/helpers/processes.ts';
import { tempDir } from '../../test/helpers/temp-dir.ts';
import { buildPackedCli } from '../../scripts/build-cli.ts';
import { COMMANDS } from './index.ts';

const fixture = inject('fixture');

describe('eris CLI', () => {
  it('keygen writes a Nix key pair (secret 0600) and refuses to overwrite it', () => {
    const dir = tempDir('eris-keygen-');
    const r = eris(['keygen', 'cli-test-1', join(dir, 's.sec'), join(dir, 's.pub')]);
    expect(r.status).toBe(0);
    expect(statSync(join(dir, 's.sec')).mode & 0o777).toBe(0o600);
    expect(readFileSync(join(dir, 's.pub'), 'utf8')).toMatch(/^cli-test-1:[A-Za-z0-9+/]{43}=$/);
    const again = eris(['keygen', 'cli-test-1', join(dir, 's.sec'), join(dir, 's.pub')]);
    expect(again.status).not.toBe(0);
    expect(again.stderr).toMatch(/already exists/);
  });

  it.skipIf(!fixture)('keys from eris keygen sign paths that Nix verifies', () => {
    const dir = tempDir('eris-keygen-nix-');
    expect(eris(['keygen', 'ours-1', join(dir, 'k.sec'), join(dir, 'k.pub')]).status).toBe(0);
    const root = join(dir, 'root');
    const env = nixEnv();
    execFileSync('nix', [...NIX_FLAGS, 'copy', '--no-check-sigs', '--from', fixture!.root, '--to', root, fixture!.top], { env, stdio: 'pipe' });
    execFileSync('nix', [...NIX_FLAGS, 'store', 'sign', '--store', root, '--key-file', join(dir, 'k.sec'), '-r', fixture!.top], { env, stdio: 'pipe' });
    const verify = (pk: string) =>
      spawnSync('nix', [...NIX_FLAGS, 'store', 'verify', '--store', root, '--no-contents', '-r', fixture!.top, '--sigs-needed', '1', '--option', 'trusted-public-keys', pk], { env, encoding: 'utf8' });
    expect(verify(readFileSync(join(dir, 'k.pub'), 'utf8')).status).toBe(0);
    expect(verify('ours-1:' + Buffer.alloc(32, 1).toString('base64')).status).not.toBe(0);
  });

  it('serve fails at start with one clear line on bad configuration', () => {
    const dir = tempDir('eris-cli-');
    const noSecret = { ...process.env, ERIS_EDGE_SECRET: '' };
    const withSecret = { ...process.env, ERIS_EDGE_SECRET: 'a-long-enough-edge-secret' };
    writeFileSync(join(dir, 'bad.sec'), 'name:notbase64!');
    writeFileSync(join(dir, 'bad.toml'), 'colour = "blue"\n');
    const cases: [string[], NodeJS.ProcessEnv, RegExp][] = [
      [['serve', '--sign-key', '/nonexistent.sec'], withSecret, /^eris: sign_key_paths\[0\]: cannot read \/nonexistent\.sec: ENOENT$/],
      [['serve', '--sign-key', join(dir, 'bad.sec')], withSecret, /^eris: sign_key_paths\[0\]: .*not valid base64$/],
      [['serve', '--sign-key', join(dir, 'bad.sec')], noSecret, /^eris: edge_secret: required/],
      [['serve', '--config', join(dir, 'bad.toml')], withSecret, /unknown key "colour"/],
      [['serve', '--config', join(dir, 'missing.toml')], withSecret, /^eris: cannot read config .*missing\.toml: ENOENT$/],
      [['serve', '--bogus'], withSecret, /^eris: Unknown option '--bogus'/],
      [['serve', '--bind', 'nope', '--sign-key', '/k'], withSecret, /^eris: bind: expected HOST:PORT/],
      [['frobnicate'], withSecret, /^eris: unknown command "frobnicate"/],
    ];
    for (const [args, env, re] of cases) {
      const r = eris(args, { env });
      expect({ args, status: r.status }).toEqual({ args, status: 2 });
      const first = r.stderr.trim().split('\n')[0];
      expect(first).toMatch(re);
    }
  });

  it('prints the usage on stdout for --help, of eris and of each command, and exits 0', () => {
    for (const args of [['--help'], ['-h'], ['help'], ['serve', '--help'], ['doctor', '--help'], ['keygen', '-h']]) {
      const r = eris(args);
      expect({ args, status: r.status, stderr: r.stderr }).toEqual({ args, status: 0, stderr: '' });
      expect(r.stdout).toMatch(/^usage:\n  eris serve \[--config FILE\]/);
    }
    const token = eris(['token', 'add', '--help']);
    expect(token.status).toBe(0);
    expect(token.stdout).toMatch(/^usage:\n  eris token add USER/);
    // A command with flags of its own documents them all in its --help.
    const push = eris(['push', '--help']);
    expect(push.status).toBe(0);
    for (const flag of ['--oidc', '--part-size', '--retry-seconds', '--keep-revisions']) expect(push.stdout).toContain(flag);
  });

  it('serve fails with one line when the store root holds no Nix store', () => {
    const dir = tempDir('eris-cli-');
    expect(eris(['keygen', 'k-1', join(dir, 'k.sec'), join(dir, 'k.pub')]).status).toBe(0);
    const r = eris(['serve', '--store-root', dir, '--sign-key', join(dir, 'k.sec')], { env: { ...process.env, ERIS_EDGE_SECRET: 'a-long-enough-edge-secret' } });
    expect(r.status).toBe(2);
    expect(r.stderr.trim()).toBe(`eris: store_root: no Nix store at ${dir}/nix/store`);
  });
});

describe('the packed client (npm run build:cli)', () => {
  const dir = tempDir('eris-packed-');
  const file = join(dir, 'eris.mjs');
  // Run from a directory with no node_modules above it, by path: the file must hold all it needs.
  const packed = (args: string[]) => spawnSync(process.execPath, [file, ...args], { cwd: dir, encoding: 'utf8', timeout: 60_000 });
  beforeAll(async () => {
    await buildPackedCli(file);
  });

  it('is one executable file that runs push and client-config as the project\'s eris does', async () => {
    expect(statSync(file).mode & 0o111).not.toBe(0);
    expect(readFileSync(file, 'utf8')).toMatch(/^#!\/usr\/bin\/env node\n/);
    const help = packed(['--help']);
    expect(help.status).toBe(0);
    expect(help.stdout).toBe('usage:\n' + [COMMANDS.push!.synopsis, COMMANDS['client-config']!.synopsis].join('\n') + '\n');
    expect(packed(['push', '--help']).stdout).toBe(eris(['push', '--help']).stdout);
    // client-config asks the edge (none listens on a free port): the same one line as the project's eris.
    const port = await freePort();
    const args = ['client-config', '--edge-url', `http://127.0.0.1:${port}`, '--token', 'eris_packed-test', '--json'];
    const mine = packed(args);
    expect(mine.status).toBe(1);
    expect(mine.stderr).toMatch(new RegExp(`^eris: http://127\\.0\\.0\\.1:${port}/v1/cache-config: connect ECONNREFUSED 127\\.0\\.0\\.1:${port}\n$`));
    expect(mine.stderr).toBe(eris(args).stderr);
    // Bad input: the same exit status and line as the project's eris.
    const noPaths = packed(['push', '--edge-url', 'https://cache.example.org']);
    expect(noPaths.status).toBe(2);
    expect(noPaths.stderr.split('\n')[0]).toBe(eris(['push', '--edge-url', 'https://cache.example.org']).stderr.split('\n')[0]);
  });

  it('starts without loading undici (fetch and the web classes): ~50 ms of every run, which a post-build hook pays after every build', () => {
    const report = 'process.on("exit", () => process.stderr.write("undici loaded: " + process.moduleLoadList.some((m) => m.includes("undici")) + "\\n"))';
    const r = spawnSync(process.execPath, ['--import', `data:text/javascript,${encodeURIComponent(report)}`, file, 'push', '--help'], { cwd: dir, encoding: 'utf8', timeout: 60_000 });
    expect(r.status).toBe(0);
    expect(r.stderr).toBe('undici loaded: false\n');
  });

  it('names the project for the commands it does not have', () => {
    const r = packed(['serve', '--store-root', dir]);
    expect(r.status).toBe(2);
    expect(r.stderr).toBe('eris: unknown command "serve"\nthe packed eris has push and client-config; the rest run from the project: npm run eris -- serve\n');
  });
});
