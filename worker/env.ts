/** The Worker's bindings (wrangler.toml), secrets (`wrangler secret put`) and variables. */
export interface Env {
  // Bindings
  /** Token records, keyed `token:<sha256 hex of the token>`; written by `eris token add`. */
  TOKENS: KVNamespace;

  // Secrets
  /** Shared secret sent to the origin in `x-eris-edge-secret` (at least 16 characters). */
  EDGE_SECRET: string;

  // Variables
  /** Where the origin answers, e.g. https://eris-origin.example.com (a tunnel hostname). */
  ORIGIN_URL: string;
  /** "true" lets requests without credentials read the cache. Default: false. */
  ALLOW_ANONYMOUS?: string;
  /** Budget in ms for the origin's response headers on metadata requests (narinfo, nix-cache-info). */
  ORIGIN_TIMEOUT_MS?: string;
  /** Budget in ms for the origin's response headers on NAR requests. */
  NAR_TIMEOUT_MS?: string;
  /** Realm shown in `WWW-Authenticate`. */
  REALM?: string;
}
