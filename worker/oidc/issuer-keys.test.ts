/** The issuer key source on its own: what it refuses to fetch or use, and how long it keeps keys when the issuer is down. */
import { describe, expect, it } from 'vitest';
import { issuerKeys, IssuerUnavailable, MAX_DOCUMENT_BYTES } from './issuer-keys.ts';
import { createTestIssuer } from './test-issuer.ts';
import { manualClock } from '../test-kit.ts';

const URL_ = 'https://issuer.test';

describe('issuerKeys', () => {
  it('trusts a discovery document only for its own issuer, and a JWKS only over https', async () => {
    const issuer = await createTestIssuer(URL_);
    const answer = (discovery: unknown) => async (input: string) =>
      input.endsWith('/openid-configuration') ? Response.json(discovery) : issuer.handle(new Request(input));
    for (const discovery of [{ issuer: 'https://evil.test', jwks_uri: `${URL_}/.well-known/jwks` }, { issuer: URL_, jwks_uri: 'http://issuer.test/.well-known/jwks' }, { issuer: URL_ }]) {
      const keys = issuerKeys({ issuer: URL_, fetchImpl: answer(discovery) });
      await expect(keys.key('rsa-1', 'RS256')).rejects.toThrow(IssuerUnavailable);
    }
    const good = issuerKeys({ issuer: URL_, fetchImpl: answer({ issuer: URL_, jwks_uri: `${URL_}/.well-known/jwks` }) });
    await expect(good.key('rsa-1', 'RS256')).resolves.toBeDefined();
  });

  it('reads at most MAX_DOCUMENT_BYTES of a document, declared or not', async () => {
    const lines: Record<string, unknown>[] = [];
    const huge = () => new Response(new ReadableStream({ pull: (c) => c.enqueue(new Uint8Array(64 * 1024).fill(32)) }));
    const keys = issuerKeys({ issuer: URL_, fetchImpl: async () => huge(), log: (l) => lines.push(l) });
    await expect(keys.key('rsa-1', 'RS256')).rejects.toThrow(IssuerUnavailable);
    expect(lines[0]).toMatchObject({ error: `discovery document: larger than ${MAX_DOCUMENT_BYTES} bytes` });
  });

  it('keeps using the keys it has for a day past their hour when the issuer is down, not longer', async () => {
    const issuer = await createTestIssuer(URL_);
    const clock = manualClock();
    const keys = issuerKeys({ issuer: URL_, fetchImpl: (i, init) => issuer.handle(new Request(i, init)), now: clock.now });
    await keys.key('rsa-1', 'RS256');
    issuer.setDown(true);
    clock.advance(3_600_000 + 86_400_000 - 1);
    await expect(keys.key('rsa-1', 'RS256')).resolves.toBeDefined();
    clock.advance(1);
    await expect(keys.key('rsa-1', 'RS256')).rejects.toThrow(IssuerUnavailable);
    issuer.setDown(false);
    clock.advance(10_000);
    await expect(keys.key('rsa-1', 'RS256')).resolves.toBeDefined();
  });
});
