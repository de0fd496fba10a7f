/** OIDC trust rules: parsed once with errors that name the key; claims matched exactly, by glob, or by id. */
import { describe, expect, it } from 'vitest';
import { claimMatches, issuerUrlProblem, matchRule, oidcUser, parseOidcTrust } from './oidc-trust.ts';

const GH = { name: 'github', url: 'https://token.actions.githubusercontent.com', audience: 'https://cache.example.com' };
const rule = (r: Record<string, unknown>) => ({ name: 'r', issuer: 'github', claims: { repository_id: '1' }, caches: ['ci'], scopes: ['read'], ...r });
const parse = (rules: unknown[], issuers: unknown[] = [GH]) => parseOidcTrust(JSON.stringify({ issuers, rules }));

describe('parseOidcTrust', () => {
  it('reads issuers and rules from JSON text or a TOML table, filling in read under write and 15 minutes', () => {
    const text = parse([rule({ claims: { repository_id: 123, ref: ['refs/heads/main', 'refs/tags/*'] }, scopes: ['write'] })]);
    expect(text).toEqual({
      issuers: [GH],
      rules: [{ name: 'r', issuer: 'github', claims: { repository_id: [123], ref: ['refs/heads/main', 'refs/tags/*'] }, caches: ['ci'], scopes: ['read', 'write'], minutes: 15 }],
    });
    expect(parseOidcTrust({ issuers: [GH], rules: [rule({ claims: { repository_id: 123, ref: ['refs/heads/main', 'refs/tags/*'] }, scopes: ['write'] })] })).toEqual(text);
  });

  it('refuses what it cannot use, naming the key', () => {
    const bad: [unknown[], unknown[] | undefined, RegExp][] = [
      [[], [], /^OIDC_TRUST\.issuers must be a non-empty list$/],
      [[], [{ ...GH, url: 'http://token.actions.githubusercontent.com' }], /^OIDC_TRUST\.issuers\[0\]\.url must be https \(plain http only for a loopback test issuer\)$/],
      [[], [{ ...GH, audience: '' }], /^OIDC_TRUST\.issuers\[0\]\.audience/],
      [[], [GH, { ...GH, url: 'https://other.example' }], /^OIDC_TRUST\.issuers\[1\]\.name: "github" is used twice$/],
      [[], [{ ...GH, extra: 1 }], /^OIDC_TRUST\.issuers\[0\]\.extra: unknown key/],
      [[rule({ issuer: 'gitlab' })], undefined, /^OIDC_TRUST\.rules\[0\]\.issuer must name one of the issuers \(github\)$/],
      [[rule({ claims: {} })], undefined, /^OIDC_TRUST\.rules\[0\]\.claims must pin who may push/],
      [[rule({ claims: { sub: '*' } })], undefined, /must pin who may push/],
      [[rule({ claims: { ref: 'refs/heads/main', environment: 'production' } })], undefined, /must pin who may push/],
      [[rule({ claims: { repository: ['acme/app', '*'] } })], undefined, /must pin who may push/],
      [[rule({ claims: { repository_id: [] } })], undefined, /^OIDC_TRUST\.rules\[0\]\.claims\.repository_id: an empty list matches nothing$/],
      [[rule({ claims: { repository_id: true } })], undefined, /^OIDC_TRUST\.rules\[0\]\.claims\.repository_id: expected/],
      [[rule({ caches: [] })], undefined, /^OIDC_TRUST\.rules\[0\]\.caches must list 1-8 cache names$/],
      [[rule({ caches: ['v1'] })], undefined, /^OIDC_TRUST\.rules\[0\]\.caches: "v1": "v1" is reserved/],
      [[rule({ scopes: ['admin'] })], undefined, /^OIDC_TRUST\.rules\[0\]\.scopes must list read and\/or write$/],
      [[rule({ minutes: 0 })], undefined, /^OIDC_TRUST\.rules\[0\]\.minutes must be a whole number of minutes \(1\.\.720\)$/],
      [[rule({}), rule({})], undefined, /^OIDC_TRUST\.rules\[1\]\.name: "r" is used twice$/],
    ];
    for (const [rules, issuers, re] of bad) expect(() => parse(rules, issuers)).toThrow(re);
    expect(() => parseOidcTrust('{')).toThrow(/^OIDC_TRUST must be JSON/);
  });

  it('takes plain http for a loopback test issuer only', () => {
    expect(issuerUrlProblem('http://127.0.0.1:8080')).toBeUndefined();
    expect(issuerUrlProblem('http://[::1]:8080')).toBeUndefined();
    expect(issuerUrlProblem('http://localhost:8080')).toBeUndefined();
    for (const u of ['http://10.0.0.1', 'http://127.0.0.1.example.com', 'ftp://127.0.0.1', 'https://u:p@issuer.example', 'https://issuer.example/?x=1']) {
      expect({ u, problem: issuerUrlProblem(u) }).toEqual({ u, problem: expect.any(String) });
    }
  });
});

describe('matching claims', () => {
  it('matches numbers and strings alike, globs with *, lists by any element, and nothing else', () => {
    expect(claimMatches([123], '123')).toBe(true);
    expect(claimMatches(['123'], 123)).toBe(true);
    expect(claimMatches([123], '1234')).toBe(false);
    expect(claimMatches(['acme/*'], 'acme/app')).toBe(true);
    expect(claimMatches(['acme/*'], 'acme-evil/app')).toBe(false);
    expect(claimMatches(['refs/pull/*/merge'], 'refs/pull/12/merge')).toBe(true);
    expect(claimMatches(['refs/pull/*/merge'], 'refs/pull/12/head')).toBe(false);
    expect(claimMatches(['a*a'], 'a')).toBe(false);
    expect(claimMatches(['repo:acme/app:*'], 'repo:acme/app:ref:refs/heads/main')).toBe(true);
    expect(claimMatches(['main', 'dev'], 'dev')).toBe(true);
    expect(claimMatches(['*'], undefined)).toBe(false);
    expect(claimMatches(['*'], ['x'])).toBe(false);
    expect(claimMatches(['true'], true)).toBe(false);
  });

  it('takes the first rule of the issuer whose every claim matches', () => {
    const trust = parse([
      rule({ name: 'main', claims: { repository_id: '1', ref: 'refs/heads/main' }, scopes: ['write'] }),
      rule({ name: 'any-branch', claims: { repository_id: '1' } }),
    ]);
    expect(matchRule(trust, 'github', { repository_id: '1', ref: 'refs/heads/main' })?.name).toBe('main');
    expect(matchRule(trust, 'github', { repository_id: '1', ref: 'refs/heads/dev' })?.name).toBe('any-branch');
    expect(matchRule(trust, 'github', { repository_id: '2', ref: 'refs/heads/main' })).toBeUndefined();
    expect(matchRule(trust, 'gitlab', { repository_id: '1' })).toBeUndefined();
  });

  it('names the user after the repository (or project, or subject) and ref', () => {
    expect(oidcUser('github', { repository: 'acme/app', ref: 'refs/heads/main', sub: 'x' })).toBe('github:acme/app@refs/heads/main');
    expect(oidcUser('gitlab', { project_path: 'acme/app', ref: 'main' })).toBe('gitlab:acme/app@main');
    expect(oidcUser('ci', { sub: 'job-7' })).toBe('ci:job-7');
    expect(oidcUser('ci', {})).toBeUndefined();
    expect(oidcUser('ci', { sub: 'a b' })).toBeUndefined();
    expect(oidcUser('ci', { sub: 'x'.repeat(200) })).toBeUndefined();
  });
});
