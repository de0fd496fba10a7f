import { describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { Metrics } from '../server/metrics.ts';
import { silentLogger } from '../server/log.ts';
import { createUsage } from './recorder.ts';
import { UsageDb } from './db.ts';
import { formatUsage, parseSince, usageReport } from './report.ts';
import { checkUsage } from './doctor.ts';

const T0 = Date.parse('2026-12-01T12:00:00Z');
const P = (name: string) => `/nix/store/${'a'.repeat(32)}-${name}`;

function withDir(fn: (dir: string) => void) {
  const dir = mkdtempSync(join(tmpdir(), 'eris-usage-'));
  try {
    fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const recorder = (dir: string | undefined, now = () => T0, metrics = new Metrics()) =>
  createUsage({ stateDir: dir, retentionDays: 30, metrics, log: silentLogger, flushMs: 60_000, now });

describe('usage accounting', () => {
  it('adds up per user, cache and day, and keeps the figures across a reopen', () => {
    withDir((dir) => {
      const u = recorder(dir);
      u.narinfo('alice', 'default', true);
      u.narinfo('alice', 'default', false);
      u.nar('alice', 'default', P('hello'), 1000);
      u.nar('alice', 'default', P('hello'), 1000);
      u.nar('bob', 'default', P('big'), 5000);
      u.close();
      const again = recorder(dir);
      again.nar('alice', 'default', P('libc'), 24);
      again.close();

      const db = UsageDb.open(dir, { readOnly: true });
      const r = usageReport(db, { since: '7d' }, T0);
      db.close();
      expect(r.totals).toEqual({ narinfoHits: 1, narinfoMisses: 1, nars: 4, narBytesSent: 7024, pushes: 0, bytesReceived: 0 });
      expect(r.users.map((x) => [x.user, x.narBytesSent, x.nars])).toEqual([['bob', 5000, 1], ['alice', 2024, 3]]);
      expect(r.topPaths).toEqual([
        { path: P('big'), nars: 1, bytes: 5000 },
        { path: P('hello'), nars: 2, bytes: 2000 },
        { path: P('libc'), nars: 1, bytes: 24 },
      ]);
      expect(r.days).toEqual([{ day: '2026-12-01', ...r.totals }]);
    });
  });

  it('two writers on one file (two origin workers) neither double-count nor lose figures', () => {
    withDir((dir) => {
      const a = recorder(dir);
      const b = recorder(dir);
      for (let i = 0; i < 100; i++) {
        a.nar('alice', 'default', P('x'), 10);
        b.nar('alice', 'default', P('x'), 10);
        if (i % 10 === 0) a.flush(), b.flush();
      }
      a.close();
      b.close();
      const db = UsageDb.open(dir, { readOnly: true });
      expect(usageReport(db, { since: '1d' }, T0).totals).toMatchObject({ nars: 200, narBytesSent: 2000 });
      db.close();
    });
  });

  it('a flush that finds the file locked keeps its figures for the next one', () => {
    withDir((dir) => {
      const u = recorder(dir);
      u.nar('alice', 'default', P('x'), 10);
      const other = new DatabaseSync(join(dir, 'usage.sqlite'));
      other.exec('BEGIN IMMEDIATE');
      u.flush(); // busy: nothing written, nothing lost
      u.nar('alice', 'default', P('x'), 5);
      other.exec('ROLLBACK');
      other.close();
      u.flush();
      const db = UsageDb.open(dir, { readOnly: true });
      expect(usageReport(db, { since: '1d' }, T0).totals).toMatchObject({ nars: 2, narBytesSent: 15 });
      db.close();
      u.close();
    });
  });

  it('drops days older than the retention', () => {
    withDir((dir) => {
      let now = T0 - 40 * 86_400_000;
      const u = recorder(dir, () => now);
      u.nar('old', 'default', P('x'), 1);
      u.flush();
      now = T0;
      u.nar('new', 'default', P('x'), 2);
      u.flush();
      u.close();
      const db = UsageDb.open(dir, { readOnly: true });
      const r = usageReport(db, { since: '2000-01-01' }, T0);
      db.close();
      expect(r.users.map((x) => x.user)).toEqual(['new']);
    });
  });

  it('feeds the per-cache /metrics counters, with or without a state directory', () => {
    const metrics = new Metrics();
    const u = recorder(undefined, () => T0, metrics);
    u.narinfo('alice', 'team-a', true);
    u.narinfo('bob', 'team-a', false);
    u.nar('alice', 'team-a', P('x'), 123);
    const text = metrics.render();
    expect(text).toContain('eris_cache_requests_total{cache="team-a",kind="narinfo_hit"} 1');
    expect(text).toContain('eris_cache_requests_total{cache="team-a",kind="narinfo_miss"} 1');
    expect(text).toContain('eris_cache_nar_bytes_total{cache="team-a",direction="sent"} 123');
    expect(text).not.toContain('alice');
    u.close();
  });

  it('--since takes days or a date, and refuses anything else in one line', () => {
    expect(parseSince('7d', T0)).toBe('2026-11-25');
    expect(parseSince('1d', T0)).toBe('2026-12-01');
    expect(parseSince('2026-11-01', T0)).toBe('2026-11-01');
    expect(() => parseSince('week', T0)).toThrow(/^--since: expected a number of days \(7d\) or a date/);
  });

  it('prints a table with totals, top users and top paths', () => {
    withDir((dir) => {
      const u = recorder(dir);
      u.narinfo('alice', 'default', true);
      u.nar('alice', 'default', P('hello'), 3 * 1024 * 1024);
      u.nar('', 'default', P('hello'), 10);
      u.close();
      const db = UsageDb.open(dir, { readOnly: true });
      const text = formatUsage(usageReport(db, { since: '7d' }, T0));
      db.close();
      expect(text).toContain('usage 2026-11-25 to 2026-12-01 (UTC days), all caches, all users');
      expect(text).toMatch(/^total\s+1\s+0\s+2\s+3\.0 MiB\s+0\s+0 B$/m);
      expect(text).toMatch(/^alice\s+1\s+0\s+1\s+3\.0 MiB/m);
      expect(text).toMatch(/^\(anonymous\)\s+0\s+0\s+1\s+10 B/m);
      expect(text).toContain(`${P('hello')}     2  3.0 MiB`);
    });
  });
});

describe('eris doctor: usage', () => {
  const config = (stateDir: string | undefined) => ({ stateDir, usageRetentionDays: 30 }) as Parameters<typeof checkUsage>[0];

  it('says usage is off without state_dir, fine for a writable one, and what is recorded', () => {
    expect(checkUsage(config(undefined))).toEqual([{ status: 'skip', what: 'usage', detail: 'not recorded: set state_dir (e.g. /var/lib/eris) for `eris usage`' }]);
    withDir((dir) => {
      expect(checkUsage(config(join(dir, 'state')))[0]).toMatchObject({ status: 'ok', detail: `state_dir ${join(dir, 'state')} is writable; no usage recorded yet` });
      const u = recorder(dir);
      u.nar('alice', 'default', P('x'), 1);
      u.close();
      expect(checkUsage(config(dir))[0]).toMatchObject({ status: 'ok', detail: `${join(dir, 'usage.sqlite')}: 1 day(s) recorded, 2026-12-01 to 2026-12-01, kept 30 days` });
    });
  });

  it('fails when the state directory cannot be made', () => {
    withDir((dir) => {
      writeFileSync(join(dir, 'file'), '');
      expect(checkUsage(config(join(dir, 'file/state')))[0]).toEqual({ status: 'FAIL', what: 'usage', detail: `state_dir ${join(dir, 'file/state')}: ${join(dir, 'file')} is not a directory` });
    });
  });
});

describe('usage per token id', () => {
  it('keeps figures per token, answers --token, lists pushes, and upgrades a file written before token ids', () => {
    withDir((dir) => {
      // A usage.sqlite as origins before token ids wrote it.
      const old = new DatabaseSync(join(dir, 'usage.sqlite'));
      old.exec(`CREATE TABLE usage (day TEXT NOT NULL, user TEXT NOT NULL, cache TEXT NOT NULL,
        narinfo_hits INTEGER NOT NULL DEFAULT 0, narinfo_misses INTEGER NOT NULL DEFAULT 0, nars INTEGER NOT NULL DEFAULT 0,
        nar_bytes_sent INTEGER NOT NULL DEFAULT 0, pushes INTEGER NOT NULL DEFAULT 0, bytes_received INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (day, user, cache)) WITHOUT ROWID;
        CREATE TABLE usage_paths (day TEXT NOT NULL, user TEXT NOT NULL, cache TEXT NOT NULL, path TEXT NOT NULL,
        nars INTEGER NOT NULL DEFAULT 0, bytes INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (day, user, cache, path)) WITHOUT ROWID;
        INSERT INTO usage (day, user, cache, nars, nar_bytes_sent) VALUES ('2026-12-01', 'alice', 'default', 1, 700);`);
      old.close();
      const u = recorder(dir);
      u.nar('alice', 'default', P('hello'), 1000, '0123456789ab');
      u.nar('alice', 'default', P('hello'), 1000, 'ba9876543210');
      u.pushed('ci', 'default', 'ffffffffffff', { storePath: P('app'), narSize: 4096 });
      u.received('ci', 'default', 4000, 'ffffffffffff');
      u.close();
      const db = UsageDb.open(dir, { readOnly: true });
      try {
        const all = usageReport(db, { since: '2026-11-01' }, T0);
        expect(all.totals.narBytesSent).toBe(2700); // the old row survived the upgrade
        expect(all.tokens).toEqual(expect.arrayContaining([
          expect.objectContaining({ token: '0123456789ab', user: 'alice', narBytesSent: 1000 }),
          expect.objectContaining({ token: 'ba9876543210', user: 'alice', narBytesSent: 1000 }),
          expect.objectContaining({ token: null, user: 'alice', narBytesSent: 700 }),
          expect.objectContaining({ token: 'ffffffffffff', user: 'ci', pushes: 1, bytesReceived: 4000 }),
        ]));
        const one = usageReport(db, { since: '2026-11-01', token: '0123456789ab' }, T0);
        expect(one.totals).toMatchObject({ nars: 1, narBytesSent: 1000 });
        expect(one.topPaths).toEqual([{ path: P('hello'), nars: 1, bytes: 1000 }]);
        expect(formatUsage(one)).toContain('token 0123456789ab');
        expect(db.recentPushes({ since: '2026-11-01' }, 10)).toEqual([{ at: new Date(T0).toISOString(), user: 'ci', token: 'ffffffffffff', cache: 'default', storePath: P('app'), narSize: 4096 }]);
      } finally {
        db.close();
      }
    });
  });
});
