/**
 * The files in deploy/ are checked as far as this machine can: the shell script is valid bash, the example config loads
 * through the origin's own parser, the tunnel config keeps HTTP/2 and its
 * catch-all, the address list is all CIDRs — and the units' sqlite3 step
 * really lets an unprivileged reader open an idle WAL database.
 */
import { describe, it, expect } from 'vitest';
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { BlockList, isIPv4, isIPv6 } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { parseConfigFile, resolveConfig } from '../../origin/config/index.ts';

const DEPLOY = new URL('../../deploy/', import.meta.url).pathname;
const read = (name: string) => readFileSync(join(DEPLOY, name), 'utf8');

function hasCommand(cmd: string, args: string[] = ['--version']): boolean {
  return spawnSync(cmd, args, { stdio: 'ignore' }).error === undefined;
}

// deploy/nixos/module.nix is evaluated with nixpkgs' lib in test/deploy/nixos-module.test.ts.

describe('deploy/refresh-cloudflare-ips.sh', () => {
  it('is valid bash', () => {
    execFileSync('bash', ['-n', join(DEPLOY, 'refresh-cloudflare-ips.sh')], { stdio: ['ignore', 'ignore', 'pipe'] });
  });
});

describe('deploy/eris.example.toml', () => {
  const text = read('eris.example.toml');

  it('loads through the origin config parser with ERIS_EDGE_SECRET set', () => {
    const env = { ERIS_EDGE_SECRET: 'deploy-test-secret-0123456789' };
    const config = resolveConfig({ file: parseConfigFile(text, 'eris.toml', env), env });
    expect(config).toMatchObject({
      host: '127.0.0.1',
      port: 8788,
      storeRoot: '/',
      signKeyPaths: ['/etc/eris/signing-key.sec'],
      edgeSecret: env.ERIS_EDGE_SECRET,
    });
  });

  it('fails naming the variable when ERIS_EDGE_SECRET is missing', () => {
    expect(() => parseConfigFile(text, 'eris.toml', {})).toThrow(/edge_secret: environment variable ERIS_EDGE_SECRET is not set/);
  });
});

describe('deploy/cloudflared/config.yml', () => {
  const lines = read('cloudflared/config.yml')
    .split('\n')
    .filter((l) => l.trim() !== '' && !l.trim().startsWith('#'));

  it('forces HTTP/2', () => {
    expect(lines).toContain('protocol: http2');
  });

  it('routes the hostname to the local origin and ends with the 404 catch-all', () => {
    const start = lines.indexOf('ingress:');
    expect(start).toBeGreaterThanOrEqual(0);
    const rules = lines.slice(start + 1).filter((l) => /^\s*- /.test(l));
    expect(rules.length).toBeGreaterThanOrEqual(2);
    expect(rules[0]).toMatch(/- hostname: \S+/);
    expect(lines).toContain('    service: http://127.0.0.1:8788');
    expect(rules.at(-1)).toMatch(/^\s*- service: http_status:404$/);
    // nothing follows the catch-all
    expect(lines.at(-1)).toMatch(/- service: http_status:404$/);
  });
});

describe('deploy/cloudflare-ips.txt', () => {
  const ranges = read('cloudflare-ips.txt')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));

  it('holds IPv4 and IPv6 ranges, every one a valid CIDR', () => {
    const list = new BlockList();
    for (const r of ranges) {
      const [addr = '', bits = ''] = r.split('/');
      const family = isIPv4(addr) ? 'ipv4' : isIPv6(addr) ? 'ipv6' : undefined;
      expect(family, `${r} is not an address/prefix`).toBeDefined();
      expect(bits, r).toMatch(/^\d{1,3}$/);
      expect(() => list.addSubnet(addr, Number(bits), family)).not.toThrow();
    }
    expect(ranges.some((r) => isIPv4(r.split('/')[0]!))).toBe(true);
    expect(ranges.some((r) => isIPv6(r.split('/')[0]!))).toBe(true);
  });
});

describe('the units\' sqlite3 ExecStartPre', () => {
  const unit = read('systemd/eris.service');
  const pre = /^ExecStartPre=\+\/usr\/bin\/sqlite3 -readonly \/nix\/var\/nix\/db\/db\.sqlite '([^']+)'$/m.exec(unit);

  it('is the same step in the systemd unit and the NixOS module', () => {
    expect(pre, 'ExecStartPre line in eris.service').not.toBeNull();
    expect(read('nixos/module.nix')).toContain(`sqlite3 -readonly \${storeDb} '${pre![1]}'`);
  });

  // Needs root (to act as root and as nobody), setpriv and the sqlite3 command.
  const canRun = process.getuid?.() === 0 && hasCommand('setpriv') && hasCommand('sqlite3');

  it.skipIf(!canRun)('lets an unprivileged reader open an idle WAL database', () => {
    const dir = mkdtempSync(join(tmpdir(), 'eris-wal-'));
    try {
      chmodSync(dir, 0o755);
      const dbPath = join(dir, 'db.sqlite');
      const db = new DatabaseSync(dbPath);
      db.exec("PRAGMA journal_mode = wal; CREATE TABLE ValidPaths (id INTEGER PRIMARY KEY, path TEXT); INSERT INTO ValidPaths (path) VALUES ('/nix/store/x')");
      db.close(); // the last connection removes -wal and -shm, like an idle Nix

      const readAsNobody = () =>
        spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, '--disable-warning=ExperimentalWarning', '-e',
          `const { DatabaseSync } = require('node:sqlite');
           const db = new DatabaseSync(${JSON.stringify(dbPath)}, { readOnly: true });
           process.stdout.write(String(db.prepare('SELECT count(*) AS n FROM ValidPaths').get().n));`,
        ], { encoding: 'utf8', timeout: 20_000 });

      const before = readAsNobody();
      expect(before.status).not.toBe(0);
      expect(before.stderr).toMatch(/readonly database/);

      execFileSync('sqlite3', ['-readonly', dbPath, pre![1]!], { stdio: ['ignore', 'ignore', 'pipe'] });

      const after = readAsNobody();
      expect(after.stderr).toBe('');
      expect(after.stdout).toBe('1');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
