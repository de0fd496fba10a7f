/**
 * Token bookkeeping without wrangler: revoke selection, the list table, and
 * the CLI's usage errors (the record, its key and digest are tested with the
 * contract, shared/contract.test.ts, since the edge reads what the CLI writes). The round trip through real wrangler
 * and `wrangler dev` is test/e2e/tokens-edge.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { formatTokenTable, LOCAL_TRIES, selectForRevoke, tokenEntry, wranglerKv, type ListedToken, type WranglerRun } from './cli.ts';
import { tokenDigest, tokenExpired, tokenKey } from '../../shared/contract.ts';
import { kvTokenStore } from '../../worker/tokens.ts';
import { eris } from '../../test/helpers/processes.ts';


function listed(user: string, digest: string, extra: Partial<ListedToken> = {}): ListedToken {
  return { user, scopes: ['read'], created: '2026-01-02T03:04:05.678Z', expires: null, id: digest.slice(0, 12), key: tokenKey(digest), expired: false, ...extra };
}

const A = 'aaaa1111' + '0'.repeat(56);
const A2 = 'aaaa2222' + '0'.repeat(56);
const B = 'bbbb1111' + '0'.repeat(56);
const tokens = [listed('alice', A), listed('alice', A2), listed('bob', B)];

describe('token records', () => {
  it('digests tokens as the edge does: the edge finds what the CLI writes, under the key it writes', async () => {
    const kv = new Map<string, string>();
    const written = await tokenEntry('alice', { scopes: ['read', 'write'], expiresDays: 30 });
    kv.set(written.key, JSON.stringify(written.record)); // what `wrangler kv key put` stores
    const edge = kvTokenStore({ get: async (k) => kv.get(k) ?? null });
    const found = await edge.get(await tokenDigest(written.token));
    expect(found).toEqual(written.record);
    expect(found && tokenExpired(found, Date.now())).toBe(false);
    expect(await edge.get(await tokenDigest(written.token + 'x'))).toBeNull();
  });

  it('refuses bad users, scopes and dates before anything is written', async () => {
    await expect(tokenEntry('a b')).rejects.toThrow(/user names are 1-64 characters/);
    await expect(tokenEntry('alice', { scopes: ['root'] })).rejects.toThrow(/unknown scope "root" \(read, write, admin\)/);
    await expect(tokenEntry('alice', { expires: 'soon' })).rejects.toThrow(/expires: not a date/);
  });
});

describe('revoke selection', () => {
  it('takes an id prefix that matches exactly one token', () => {
    expect(selectForRevoke(tokens, { id: 'aaaa1' })).toEqual([tokens[0]]);
    expect(selectForRevoke(tokens, { id: 'BBBB' })).toEqual([tokens[2]]);
    expect(selectForRevoke(tokens, { id: A2 })).toEqual([tokens[1]]);
  });

  it('refuses an ambiguous, unknown, short or non-hex id', () => {
    expect(() => selectForRevoke(tokens, { id: 'aaaa' })).toThrow(/ambiguous: it matches aaaa11110000 \(alice\), aaaa22220000 \(alice\)/);
    expect(() => selectForRevoke(tokens, { id: 'cccc' })).toThrow(/no token with id cccc/);
    expect(() => selectForRevoke(tokens, { id: 'aaa' })).toThrow(/4 to 64 hex/);
    expect(() => selectForRevoke(tokens, { id: 'alice' })).toThrow(/4 to 64 hex/);
  });

  it('takes every token of a user, and refuses a user with none', () => {
    expect(selectForRevoke(tokens, { user: 'alice' })).toEqual(tokens.slice(0, 2));
    expect(() => selectForRevoke(tokens, { user: 'carol' })).toThrow(/no tokens for user "carol"/);
  });

  it('wants exactly one of id and user', () => {
    expect(() => selectForRevoke(tokens, {})).toThrow(/one of them/);
    expect(() => selectForRevoke(tokens, { id: 'bbbb', user: 'bob' })).toThrow(/one of them/);
  });
});

describe('eris token list table', () => {
  it('shows id, user, scopes and dates, marking expired tokens', () => {
    const table = formatTokenTable([
      listed('alice', A),
      listed('bob', B, { scopes: ['read', 'write'], caches: ['team-a', 'team-b'], expires: '2000-01-01T00:00:00.000Z', expired: true }),
    ]);
    expect(table).toBe(
      'ID            USER   SCOPES      CACHES         CREATED               EXPIRES\n' +
        'aaaa11110000  alice  read        (default)      2026-01-02T03:04:05Z  never\n' +
        'bbbb11110000  bob    read,write  team-a,team-b  2026-01-02T03:04:05Z  2000-01-01T00:00:00Z (expired)\n',
    );
  });
});

describe('wrangler kv runs', () => {
  // The fault itself (workerd's "internal error" beside a running wrangler dev) cannot be caused at will; these runs stand in for wrangler.
  const workerdFault: WranglerRun = { status: 1, stdout: '', stderr: 'stack: workerd@2b5edc0; sentryErrorContext = jsgInternalError\n✘ [ERROR] internal error; reference = mj6talb1\n' };
  const ok: WranglerRun = { status: 0, stdout: '[]\n', stderr: '' };
  const scripted = (answers: WranglerRun[]) => {
    const calls: string[][] = [];
    return { calls, run: (args: string[]) => { calls.push(args); return answers[calls.length - 1] ?? answers.at(-1)!; } };
  };

  it('runs a local command again after a workerd internal error, and reports it after LOCAL_TRIES runs', () => {
    const once = scripted([workerdFault, ok]);
    expect(wranglerKv({ mode: 'local', persistTo: '/tmp/x' }, ['key', 'list'], once.run)).toBe('[]\n');
    expect(once.calls).toHaveLength(2);
    expect(once.calls[1]).toContain('--local');

    const always = scripted([workerdFault]);
    expect(() => wranglerKv({ mode: 'local' }, ['key', 'list'], always.run)).toThrow(/^wrangler kv key list failed: .*internal error/);
    expect(always.calls).toHaveLength(LOCAL_TRIES);
  });

  it('reports any other failure, and every remote one, at once', () => {
    const refused = scripted([{ status: 1, stdout: '', stderr: '✘ [ERROR] Unknown arguments: bogus\n' }]);
    expect(() => wranglerKv({ mode: 'local' }, ['key', 'list'], refused.run)).toThrow('wrangler kv key list failed: ✘ [ERROR] Unknown arguments: bogus');
    expect(refused.calls).toHaveLength(1);
    const remote = scripted([workerdFault, ok]);
    expect(() => wranglerKv({ mode: 'remote' }, ['key', 'put'], remote.run)).toThrow(/internal error/);
    expect(remote.calls).toHaveLength(1);
  });
});

describe('eris token usage errors (exit 2, before wrangler runs)', () => {
  it.each([
    [['token'], /usage:\n  eris token add USER/],
    [['token', 'frob'], /usage:/],
    [['token', 'add'], /usage: eris token add USER/],
    [['token', 'add', 'alice', '--expires-days', '0'], /--expires-days: expected a positive whole number/],
    [['token', 'list', 'extra'], /usage: eris token list/],
    [['token', 'list', '--scope', 'read'], /--scope does not apply/],
    [['token', 'revoke'], /usage: eris token revoke ID \| --user USER/],
    [['token', 'revoke', 'abcd', '--user', 'alice'], /usage: eris token revoke/],
    [['token', 'add', 'alice', '--remote', '--persist-to', '/tmp/x'], /--remote and --persist-to: choose one/],
  ])('%j', (args, re) => {
    const r = eris(args);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(re);
  });
});
