/**
 * A CI identity provider for tests (never imported by the Worker): keys made
 * here with WebCrypto, a discovery document and a JWKS answered by `handle`
 * (a fetch-style handler: the unit tests call it as the edge's fetch, the
 * end-to-end test serves it on loopback), and JWTs signed as GitHub Actions
 * signs them — or broken in one chosen way.
 */

/** (Not jwt.ts's: this file is also compiled with Node's typings, for the end-to-end test.) */
function base64UrlEncode(bytes: Uint8Array): string {
  let bin = '';
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

/** WebCrypto's key type, named the same way under Node's and workerd's typings. */
type Key = Parameters<typeof crypto.subtle.sign>[1];

export interface SigningKey {
  kid: string;
  alg: 'RS256' | 'ES256';
  privateKey: Key;
  jwk: { kty: string; kid: string; alg: string; use: string; n?: string; e?: string; crv?: string; x?: string; y?: string };
}

async function makeKey(kid: string, alg: 'RS256' | 'ES256'): Promise<SigningKey> {
  const params = alg === 'RS256'
    ? { name: 'RSASSA-PKCS1-v1_5', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' }
    : { name: 'ECDSA', namedCurve: 'P-256' };
  const pair = (await crypto.subtle.generateKey(params, true, ['sign', 'verify'])) as { publicKey: Key; privateKey: Key };
  const pub = (await crypto.subtle.exportKey('jwk', pair.publicKey)) as unknown as Record<string, string | undefined>;
  const { kty, n, e, crv, x, y } = pub;
  const jwk = JSON.parse(JSON.stringify({ kty, n, e, crv, x, y, kid, alg, use: 'sig' })) as SigningKey['jwk'];
  return { kid, alg, privateKey: pair.privateKey, jwk };
}

const text = (s: string) => new TextEncoder().encode(s);
const b64json = (v: unknown) => base64UrlEncode(text(JSON.stringify(v)));

export interface SignOptions {
  /** Which key signs (default the RSA key); a key not published in the JWKS gives an unknown kid. */
  key?: SigningKey;
  /** Header fields to set or override (e.g. { alg: 'none' }). */
  header?: Record<string, unknown>;
}

export async function createTestIssuer(url: string) {
  const rsa = await makeKey('rsa-1', 'RS256');
  const ec = await makeKey('ec-1', 'ES256');
  const published: SigningKey[] = [rsa, ec];
  let requests = 0;
  let down = false;

  async function signWith(key: SigningKey, input: string): Promise<Uint8Array> {
    const alg = key.alg === 'RS256' ? { name: 'RSASSA-PKCS1-v1_5' } : { name: 'ECDSA', hash: 'SHA-256' };
    return new Uint8Array(await crypto.subtle.sign(alg, key.privateKey, text(input)));
  }

  return {
    url,
    rsa,
    ec,
    /** Requests the discovery document and JWKS got. */
    requests: () => requests,
    /** While down, both answer 503. */
    setDown(value: boolean) {
      down = value;
    },
    /** A new key, not in the JWKS until publish(). */
    newKey: (kid: string, alg: 'RS256' | 'ES256' = 'RS256') => makeKey(kid, alg),
    publish(key: SigningKey) {
      published.push(key);
    },
    /** GitHub-like claims for `repository`, valid now for 5 minutes, with `overrides` on top. */
    claims(overrides: Record<string, unknown> = {}, nowMs = Date.now()): Record<string, unknown> {
      const now = Math.floor(nowMs / 1000);
      return {
        iss: url,
        aud: 'https://cache.example.test',
        sub: 'repo:acme/app:ref:refs/heads/main',
        repository: 'acme/app',
        repository_id: '123456789',
        repository_owner: 'acme',
        repository_owner_id: '4242',
        ref: 'refs/heads/main',
        environment: 'production',
        iat: now,
        nbf: now - 5,
        exp: now + 300,
        ...overrides,
      };
    },
    async sign(claims: Record<string, unknown>, o: SignOptions = {}): Promise<string> {
      const key = o.key ?? rsa;
      const header = { alg: key.alg, typ: 'JWT', kid: key.kid, ...o.header };
      const input = `${b64json(header)}.${b64json(claims)}`;
      return `${input}.${base64UrlEncode(await signWith(key, input))}`;
    },
    /** A token whose header says HS256 and whose MAC is keyed with the RSA public key's JWK text: the classic key-confusion forgery. */
    async hs256WithPublicKey(claims: Record<string, unknown>): Promise<string> {
      const input = `${b64json({ alg: 'HS256', typ: 'JWT', kid: rsa.kid })}.${b64json(claims)}`;
      const key = await crypto.subtle.importKey('raw', text(JSON.stringify(rsa.jwk)), { name: 'HMAC', hash: 'SHA-256' }, false, ['sign']);
      return `${input}.${base64UrlEncode(new Uint8Array(await crypto.subtle.sign('HMAC', key, text(input))))}`;
    },
    /** The discovery document and the JWKS, as fetch answers. */
    async handle(req: Request): Promise<Response> {
      requests++;
      if (down) return new Response('down\n', { status: 503 });
      const path = new URL(req.url).pathname;
      if (path === '/.well-known/openid-configuration') return Response.json({ issuer: url, jwks_uri: `${url}/.well-known/jwks` });
      if (path === '/.well-known/jwks') return Response.json({ keys: published.map((k) => k.jwk) });
      return new Response('not found\n', { status: 404 });
    },
  };
}

export type TestIssuer = Awaited<ReturnType<typeof createTestIssuer>>;
