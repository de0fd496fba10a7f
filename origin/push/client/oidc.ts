/**
 * The client half of the OIDC exchange (shared/oidc-exchange.ts): a CI job
 * gets its identity token from its CI system and trades it at the edge for a
 * short-lived eris token — no eris secret stored in CI.
 *
 * Where the identity token comes from, first found wins:
 * - `ERIS_OIDC_TOKEN` (or `tokenVariable`): a JWT already in the environment — GitLab CI puts it
 *   there with `id_tokens: { ERIS_OIDC_TOKEN: { aud: <audience> } }`;
 * - GitHub Actions: `ACTIONS_ID_TOKEN_REQUEST_URL` and `ACTIONS_ID_TOKEN_REQUEST_TOKEN`, which the
 *   runner sets for jobs with `permissions: id-token: write`; the token is asked for with `audience`.
 * The audience defaults to the edge's origin (`https://cache.example.com`), which is what the
 * trust rules' `audience` should then say.
 */
import { OIDC_TOKEN_PATH, type ExchangeResponse } from '../../../shared/oidc-exchange.ts';

export const OIDC_TOKEN_VARIABLE = 'ERIS_OIDC_TOKEN';

export class OidcExchangeError extends Error {
  override name = 'OidcExchangeError';
}

export interface OidcExchangeOptions {
  /** The edge, e.g. https://cache.example.com (a path after it is ignored). */
  edgeUrl: string;
  /** The `aud` to ask GitHub for; default: the edge's origin. */
  audience?: string;
  /** Variable holding a ready JWT; default ERIS_OIDC_TOKEN. */
  tokenVariable?: string;
  env?: Record<string, string | undefined>;
  fetchImpl?: typeof fetch;
  timeoutMs?: number;
}

/** Whether this environment offers a CI identity token exchangeOidcToken can use. */
export function hasCiIdentity(env: Record<string, string | undefined> = process.env, tokenVariable = OIDC_TOKEN_VARIABLE): boolean {
  return !!env[tokenVariable] || (!!env.ACTIONS_ID_TOKEN_REQUEST_URL && !!env.ACTIONS_ID_TOKEN_REQUEST_TOKEN);
}

/** The last line of an error body, bounded, for a one-line message. */
const oneLine = (text: string) => text.trim().split('\n').pop()?.slice(0, 300) ?? '';

/** The CI job's identity token (a JWT) for `audience`. */
export async function ciIdentityToken(o: OidcExchangeOptions & { audience: string }): Promise<{ jwt: string; source: string }> {
  const env = o.env ?? process.env;
  const fetchImpl = o.fetchImpl ?? fetch;
  const variable = o.tokenVariable ?? OIDC_TOKEN_VARIABLE;
  const ready = env[variable];
  if (ready) return { jwt: ready.trim(), source: variable };
  const url = env.ACTIONS_ID_TOKEN_REQUEST_URL;
  const bearer = env.ACTIONS_ID_TOKEN_REQUEST_TOKEN;
  if (url && bearer) {
    const ask = new URL(url);
    ask.searchParams.set('audience', o.audience);
    const res = await fetchImpl(ask, { headers: { Authorization: `Bearer ${bearer}`, Accept: 'application/json' }, signal: AbortSignal.timeout(o.timeoutMs ?? 30_000) });
    if (!res.ok) throw new OidcExchangeError(`GitHub's identity token request failed: HTTP ${res.status} ${oneLine(await res.text())}`);
    const body = (await res.json()) as { value?: unknown };
    if (typeof body.value !== 'string' || !body.value) throw new OidcExchangeError('GitHub\'s identity token request answered without a token ("value")');
    return { jwt: body.value, source: 'GitHub Actions' };
  }
  throw new OidcExchangeError(
    `no CI identity token: in GitHub Actions give the job "permissions: id-token: write"; in GitLab CI add "id_tokens: ${variable}: aud: ${o.audience}"; elsewhere put the JWT in ${variable}`,
  );
}

/** Gets the CI job's identity token and exchanges it at the edge for an eris token. */
export async function exchangeOidcToken(o: OidcExchangeOptions): Promise<ExchangeResponse> {
  const edge = new URL(o.edgeUrl);
  const audience = o.audience ?? edge.origin;
  const { jwt } = await ciIdentityToken({ ...o, audience });
  const fetchImpl = o.fetchImpl ?? fetch;
  const res = await fetchImpl(new URL(OIDC_TOKEN_PATH, edge.origin), {
    method: 'POST',
    headers: { Authorization: `Bearer ${jwt}`, Accept: 'application/json' },
    signal: AbortSignal.timeout(o.timeoutMs ?? 30_000),
  });
  if (!res.ok) throw new OidcExchangeError(`the edge refused the OIDC exchange: HTTP ${res.status}: ${oneLine(await res.text())}`);
  const body = (await res.json()) as ExchangeResponse;
  if (typeof body.token !== 'string' || typeof body.login !== 'string') throw new OidcExchangeError('the edge answered the OIDC exchange without a token');
  return body;
}
