/** The Worker's bindings (wrangler.toml), secrets (`wrangler secret put`) and variables. */
export interface Env {
  // Bindings
  /** Token records, keyed `token:<sha256 hex of the token>`; written by `eris token add`. */
  TOKENS: KVNamespace;
  /** Failed authentications per client address and period ([[ratelimits]] in wrangler.toml); optional. */
  AUTH_RATE_LIMITER?: RateLimit;
  /** Workers VPC service binding to the tunnel ([[vpc_services]]); when set, ORIGIN_URL only names the host and path. */
  ORIGIN?: Fetcher;

  // Secrets
  /** Shared secret sent to the origin in `x-eris-edge-secret` (at least EDGE_SECRET_MIN_LENGTH, 16, characters). */
  EDGE_SECRET: string;
  /** Cloudflare Access service token sent to the tunnel hostname (both or neither). */
  ACCESS_CLIENT_ID?: string;
  ACCESS_CLIENT_SECRET?: string;
  /** HMAC key (at least 32 characters) of the tokens the OIDC exchange hands out; rotating it ends them all. Required with OIDC_TRUST. */
  OIDC_TOKEN_SECRET?: string;

  // Variables
  /** Where the origin answers, e.g. https://eris-origin.example.com (a tunnel hostname). Ignored when ORIGINS is set. */
  ORIGIN_URL: string;
  /**
   * Several origins, in priority order: a JSON array (string, or a TOML array under [vars]) of
   * `{ "id": "box1", "url": "https://box1.example.com", "binding"?: "ORIGIN_BOX1", "secret"?: "EDGE_SECRET_BOX1" }`.
   * `secret` names the Worker secret with that origin's edge secret (default EDGE_SECRET);
   * `binding` a Workers VPC service binding to reach it through.
   */
  ORIGINS?: string | unknown[];
  /** With several origins: ms a metadata request waits on one origin before also asking the next. Default 300; "0": only after it failed. */
  HEDGE_MS?: string;
  /** "true" lets requests without credentials read the cache. Default: false. */
  ALLOW_ANONYMOUS?: string;
  /** Budget in ms for the origin's response headers on metadata requests (narinfo, nix-cache-info). */
  ORIGIN_TIMEOUT_MS?: string;
  /** Budget in ms for the origin's response headers on NAR requests. */
  NAR_TIMEOUT_MS?: string;
  /** The cache the bare paths (`/nix-cache-info`, `/<hash>.narinfo`) belong to, for token checks. Default: "default". */
  DEFAULT_CACHE?: string;
  /**
   * Seconds the isolate keeps a token lookup (hit or miss) before asking KV again; 0 asks KV on every
   * request. Default: 5. A revoked token is refused within KV's ~60 s plus this.
   */
  TOKEN_CACHE_SECONDS?: string;
  /**
   * Trust rules for `POST /v1/oidc/token` (shared/oidc-trust.ts): issuers and rules mapping CI identity
   * claims to caches, scopes and a lifetime. JSON text, or a table under [vars]. Absent: no exchange.
   */
  OIDC_TRUST?: string | Record<string, unknown>;
  /** Realm shown in `WWW-Authenticate`. */
  REALM?: string;
  /** Largest upload (PUT body) accepted, bytes. Default: 100000000 (Cloudflare Free/Pro's request limit). */
  MAX_UPLOAD_BYTES?: string;
  /** Budget in ms for the origin's answer to an upload (it verifies and imports before answering). Default: 300000. */
  PUSH_TIMEOUT_MS?: string;
  /** Consecutive origin failures (unreachable or over budget) that open the circuit breaker. Default: 5. */
  BREAKER_THRESHOLD?: string;
  /** How long the open circuit answers 503 at once before one trial request, ms. Default: 5000. */
  BREAKER_COOLDOWN_MS?: string;
}
