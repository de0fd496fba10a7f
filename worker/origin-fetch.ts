/**
 * How the Worker reaches the origin, chosen by configuration:
 * - a Workers VPC service binding `ORIGIN` to the tunnel (no public origin hostname), or
 * - `fetch(ORIGIN_URL)` to a tunnel hostname, optionally behind Cloudflare Access with a
 *   Service Auth policy: then every request carries `CF-Access-Client-Id`/`-Secret`.
 * Either way the request keeps `cache: 'no-store'` and the edge secret set by the caller.
 */
import type { FetchOrigin } from './proxy.ts';

export interface OriginAccess {
  clientId: string;
  clientSecret: string;
}

export interface OriginBinding {
  fetch(request: Request): Promise<Response>;
}

export function createOriginFetch(options: { binding?: OriginBinding; access?: OriginAccess; fetchImpl?: FetchOrigin }): FetchOrigin {
  const send: FetchOrigin = options.binding ? (req) => options.binding!.fetch(req) : (options.fetchImpl ?? ((req) => fetch(req)));
  const access = options.access;
  if (!access) return send;
  return (req) => {
    const withAccess = new Request(req);
    withAccess.headers.set('CF-Access-Client-Id', access.clientId);
    withAccess.headers.set('CF-Access-Client-Secret', access.clientSecret);
    return send(withAccess);
  };
}
