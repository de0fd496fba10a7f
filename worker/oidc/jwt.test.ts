/** The JWT checks on their own: keys that do not suit the algorithm, weak RSA keys, the time window's leeway. */
import { describe, expect, it } from 'vitest';
import { checkClaims, decodeJwt, importJwk, JwtError, verifySignature } from './jwt.ts';
import { createTestIssuer } from './test-issuer.ts';

describe('JWT verification', () => {
  it('verifies RS256 and ES256 with their own keys only', async () => {
    const issuer = await createTestIssuer('https://issuer.test');
    for (const [key, other] of [[issuer.rsa, issuer.ec], [issuer.ec, issuer.rsa]] as const) {
      const jwt = decodeJwt(await issuer.sign(issuer.claims(), { key }));
      expect(await verifySignature(jwt, await importJwk(key.jwk, key.alg))).toBe(true);
      await expect(importJwk({ ...other.jwk, alg: undefined }, key.alg)).rejects.toThrow('key is not for this alg');
      await expect(importJwk(key.jwk, other.alg)).rejects.toThrow('key is not for this alg');
    }
    await expect(importJwk({ ...issuer.rsa.jwk, use: 'enc' }, 'RS256')).rejects.toThrow('key is not for signatures');
    // A key published for another algorithm is not used for this one, even of the same type.
    await expect(importJwk({ ...issuer.rsa.jwk, alg: 'RS512' }, 'RS256')).rejects.toThrow('key is not for this alg');
  });

  it('refuses RSA keys under 2048 bits', async () => {
    const pair = (await crypto.subtle.generateKey({ name: 'RSASSA-PKCS1-v1_5', modulusLength: 1024, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' }, true, ['sign', 'verify'])) as CryptoKeyPair;
    const jwk = (await crypto.subtle.exportKey('jwk', pair.publicKey)) as JsonWebKey;
    await expect(importJwk({ kty: 'RSA', n: jwk.n, e: jwk.e }, 'RS256')).rejects.toThrow('RSA key shorter than 2048 bits');
  });

  it('allows a minute of clock difference on exp, nbf and iat, and no more', () => {
    const now = 1_800_000_000;
    const base = { iss: 'i', aud: ['x', 'a'], exp: now, nbf: now, iat: now };
    const check = (c: Record<string, unknown>) => checkClaims({ ...base, ...c }, { issuer: 'i', audience: 'a', nowMs: now * 1000 });
    expect(() => check({ exp: now - 59 })).not.toThrow();
    expect(() => check({ exp: now - 60 })).toThrow(new JwtError('token expired'));
    expect(() => check({ nbf: now + 60 })).not.toThrow();
    expect(() => check({ nbf: now + 61 })).toThrow('token not yet valid (nbf)');
    expect(() => check({ iat: now + 61 })).toThrow('token issued in the future (iat)');
    expect(() => check({ exp: String(now + 100) })).toThrow('token has no expiry (exp)');
    expect(() => check({ aud: 'x' })).toThrow('wrong audience');
    expect(() => check({ iss: 'j' })).toThrow('wrong issuer');
  });

  it('refuses odd forms before looking at any key', () => {
    expect(() => decodeJwt('a.b')).toThrow('malformed token (not a signed JWT)');
    expect(() => decodeJwt('!!.e30.AA')).toThrow('malformed token');
    expect(() => decodeJwt(`${btoa('{"alg":"RS256","crit":["b64"]}')}.e30.AA`)).toThrow('unsupported critical header');
    expect(() => decodeJwt('x'.repeat(20_000))).toThrow('oversized token');
  });
});
