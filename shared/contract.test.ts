/**
 * The edge↔origin contract: the token digest (checked against Node's own
 * SHA-256, an independent implementation) and the one record parser both
 * the `eris token` CLI and the Worker use.
 */
import { describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { grantsScope, parseTokenRecord, tokenDigest, tokenExpired, tokenKey, type TokenRecord } from './contract.ts';

describe('token digest and key', () => {
  it('is SHA-256 as lower-case hex', async () => {
    expect(await tokenDigest('abc')).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
    for (const t of ['', 'eris_' + 'x'.repeat(43), 'ünïcødé ✓']) {
      expect(await tokenDigest(t)).toBe(createHash('sha256').update(t).digest('hex'));
    }
  });

  it('keys records as token:<digest>', () => {
    expect(tokenKey('ab12')).toBe('token:ab12');
  });
});

describe('token record parser', () => {
  const full = { user: 'alice', scopes: ['read', 'write'], caches: ['team', 'ci'], created: '2026-01-01T00:00:00.000Z', expires: '2027-01-01T00:00:00.000Z' };

  it('reads a record from JSON text (KV value) or an object (KV metadata)', () => {
    expect(parseTokenRecord(full)).toEqual(full);
    expect(parseTokenRecord(JSON.stringify(full))).toEqual(full);
  });

  it('fills what older records lack and drops unknown scopes', () => {
    expect(parseTokenRecord({ user: 'bob', scopes: ['read', 7, 'root'] })).toEqual({ user: 'bob', scopes: ['read'], created: '', expires: null });
    expect(parseTokenRecord({ user: 'bob', scopes: [], expires: null })).toEqual({ user: 'bob', scopes: [], created: '', expires: null });
    expect('caches' in parseTokenRecord({ user: 'bob', scopes: [] })!).toBe(false);
  });

  it('refuses anything that is not a record, and records with damaged limits', () => {
    for (const bad of [undefined, null, '', 'Value not found', '{', '[]', [], 42, '{"scopes":[]}', { user: 'x' }, { user: 1, scopes: [] },
      { user: 'x', scopes: 'read' }, { user: 'x', scopes: [], expires: 5 }, { user: 'x', scopes: [], caches: 'team' }, { user: 'x', scopes: [], caches: ['a', 1] }]) {
      expect({ bad, parsed: parseTokenRecord(bad) }).toEqual({ bad, parsed: null });
    }
  });
});

describe('token rules', () => {
  const rec = (r: Partial<TokenRecord>): TokenRecord => ({ user: 'u', scopes: [], created: '', expires: null, ...r });
  const now = Date.parse('2026-06-01T00:00:00Z');

  it('expires at the given date; no date is never; an unreadable date is already past', () => {
    expect(tokenExpired(rec({}), now)).toBe(false);
    expect(tokenExpired(rec({ expires: '' }), now)).toBe(false);
    expect(tokenExpired(rec({ expires: '2026-06-01T00:00:01Z' }), now)).toBe(false);
    expect(tokenExpired(rec({ expires: '2026-06-01T00:00:00Z' }), now)).toBe(true);
    expect(tokenExpired(rec({ expires: 'tomorrow' }), now)).toBe(true);
  });

  it('lets write imply read, never the other way', () => {
    expect(grantsScope(rec({ scopes: ['read'] }), 'read')).toBe(true);
    expect(grantsScope(rec({ scopes: ['read'] }), 'write')).toBe(false);
    expect(grantsScope(rec({ scopes: ['write'] }), 'read')).toBe(true);
    expect(grantsScope(rec({ scopes: [] }), 'read')).toBe(false);
  });
});
