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
