/**
 * Prometheus text-format metrics for the origin: requests by route and
 * status, bytes sent, latency histograms (narinfo answers, NAR streams, push
 * imports), signature cache hits. Plain counters in memory: cheap enough for
 * the hot path. Route labels are readable names (`narinfo`, `nar`, `push`,
 * …: routeName), never Hono patterns, and every label value is escaped as
 * the text format wants (`\\`, `\"`, `\n`), so `promtool check metrics` and a
 * stock Prometheus read it whatever a name holds.
 *
 * Why not prom-client: its cluster support (AggregatorRegistry) does what
 * cluster.ts does here — the primary asks every worker over IPC and sums —
 * and its per-observation cost (label objects hashed on each call) is more
 * than a Map lookup on a string key on the narinfo path. What it would add
 * is the escaping and the format, which are a few lines below, tested
 * against the real promtool.
 */
export interface MetricsSnapshot {
  requests: [string, number][];
  bytes: [string, number][];
  narBuckets: number[];
  narCount: number;
  narSum: number;
  narFailures: number;
  sigCacheHits: number;
  sigCacheMisses: number;
  cacheRequests?: [string, number][];
  cacheBytes?: [string, number][];
  refused?: [string, number][];
  compressionsStarted?: number;
  levels?: [string, number][];
  /** `name\0labels` → buckets (one per bound, not cumulative), count, sum. */
  histograms?: [string, HistogramData][];
}

interface HistogramData {
  buckets: number[];
  count: number;
  sum: number;
}

const DURATION_BUCKETS = [0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300];

/** The histograms besides NAR streams: name → help and upper bounds (seconds). */
export const HISTOGRAMS = {
  eris_narinfo_seconds: {
    help: 'Time to answer a narinfo request (lookup, signing), by result (hit, miss).',
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
  },
  eris_push_import_seconds: {
    help: 'Time to import a pushed path into the store (after its upload and checks), by result (ok, failed).',
    buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
  },
} as const;
export type HistogramName = keyof typeof HISTOGRAMS;

/** HELP lines of the gauges read once for all workers (Metrics.gauges). */
const GAUGE_HELP: Record<string, string> = {
  eris_nar_cache_bytes: 'Bytes in the on-disk cache of compressed NARs.',
  eris_store_free_bytes: 'Free bytes on the store\'s file system (the disk guard: min_free_bytes).',
  eris_push_dir_free_bytes: 'Free bytes on push_dir\'s file system (the disk guard: min_free_bytes).',
};

/** A label value as the text format wants it: backslash, double quote and newline escaped. */
export function escapeLabel(value: string): string {
  return value.replace(/[\\"\n]/g, (ch) => (ch === '\n' ? '\\n' : '\\' + ch));
}

/** `name="value"` pairs, escaped. */
export function labels(pairs: Record<string, string | number>): string {
  return Object.entries(pairs).map(([k, v]) => `${k}="${escapeLabel(String(v))}"`).join(',');
}

const routeNames = new Map<string, string>();
/**
 * The `route` label for a request: `push` for anything but GET and HEAD (Nix's PUTs, eris push's POSTs);
 * else by the route's pattern, the cache prefix dropped: `narinfo`, `listing`, `nar`, `log`, `realisation`,
 * and for the fixed paths the path itself in snake case (`nix_cache_info`, `v1_caches`, `health`, `metrics`);
 * `other` for what no route matched. A few names, however many caches: bounded cardinality.
 */
export function routeName(pattern: string, method = 'GET'): string {
  if (method !== 'GET' && method !== 'HEAD') return 'push';
  let name = routeNames.get(pattern);
  if (name !== undefined) return name;
  const p = pattern.startsWith('/:cache/') ? pattern.slice('/:cache'.length) : pattern;
  if (p.endsWith('.narinfo}')) name = 'narinfo';
  else if (p.endsWith('.ls}')) name = 'listing';
  else if (p.startsWith('/nar/')) name = 'nar';
  else if (p.startsWith('/log/')) name = 'log';
  else if (p.startsWith('/realisations/')) name = 'realisation';
  else if (/^(\/[a-z0-9-]+)+$/.test(p)) name = p.slice(1).replace(/[/-]/g, '_');
  else name = 'other';
  routeNames.set(pattern, name);
  return name;
}

/** A rendered key from a two-level memo (a few entries per route or histogram: bounded). */
function memoKey<K>(memo: Map<string, Map<K, string>>, a: string, b: K, render: (a: string, b: K) => string): string {
  let inner = memo.get(a);
  if (!inner) memo.set(a, (inner = new Map()));
  let k = inner.get(b);
  if (k === undefined) inner.set(b, (k = render(a, b)));
  return k;
}
const histogramKey = (name: string, labelText: string) => `${name}\0${labelText}`;
/** A request counter's key (`status` -1: the bytes-sent counter's, by route only). */
const requestKey = (name: string, status: number) => status < 0 ? `route="${name}"` : `route="${name}",status="${status}"`;

export class Metrics {
  private requests = new Map<string, number>();
  private bytes = new Map<string, number>();
  private narBuckets = new Array<number>(DURATION_BUCKETS.length).fill(0);
  private narCount = 0;
  private narSum = 0;
  private narFailures = 0;
  /** Per cache (never per user: bounded label cardinality), fed by origin/usage. */
  private cacheRequests = new Map<string, number>();
  private cacheByteCounts = new Map<string, number>();
  sigCacheHits = 0;
  sigCacheMisses = 0;
  /** Requests answered 503 by admission control, by reason. */
  private refusedCounts = new Map<string, number>();
  compressionsStarted = 0;
  private readonly started = Date.now();
  /** Gauges read once for all workers (e.g. the shared NAR cache's size). */
  gauges: Record<string, () => number> = {};
  /** Gauges of this process, summed over workers in cluster mode (compressions running, NAR streams open). */
  levels: Record<string, { help: string; read: () => number }> = {};
  private absorbedLevels: Map<string, number> | undefined;
  private histograms = new Map<string, HistogramData>();
  /**
   * The map keys above, rendered once per label set rather than per request (a new string per counter
   * bumped, hashed for the lookup, was a measurable part of a narinfo's CPU): by route name, then by
   * status (-1: the bytes-sent key); by histogram name, then by label text.
   */
  private requestKeys = new Map<string, Map<number, string>>();
  private histogramKeys = new Map<string, Map<string, string>>();

  /** The counters as plain data, to send to another process. */
  snapshot(): MetricsSnapshot {
    return {
      requests: [...this.requests],
      bytes: [...this.bytes],
      narBuckets: [...this.narBuckets],
      narCount: this.narCount,
      narSum: this.narSum,
      narFailures: this.narFailures,
      sigCacheHits: this.sigCacheHits,
      sigCacheMisses: this.sigCacheMisses,
      cacheRequests: [...this.cacheRequests],
      cacheBytes: [...this.cacheByteCounts],
      refused: [...this.refusedCounts],
      compressionsStarted: this.compressionsStarted,
      levels: Object.entries(this.levels).map(([k, l]) => [k, l.read()]),
      histograms: [...this.histograms].map(([k, h]) => [k, { buckets: [...h.buckets], count: h.count, sum: h.sum }]),
    };
  }

  /** Adds another process's counters to these (cluster mode: one /metrics for all workers). */
  absorb(s: MetricsSnapshot): void {
    for (const [k, v] of s.requests) this.requests.set(k, (this.requests.get(k) ?? 0) + v);
    for (const [k, v] of s.bytes) this.bytes.set(k, (this.bytes.get(k) ?? 0) + v);
    s.narBuckets.forEach((v, i) => (this.narBuckets[i]! += v));
    this.narCount += s.narCount;
    this.narSum += s.narSum;
    this.narFailures += s.narFailures;
    this.sigCacheHits += s.sigCacheHits;
    this.sigCacheMisses += s.sigCacheMisses;
    for (const [k, v] of s.cacheRequests ?? []) this.cacheRequests.set(k, (this.cacheRequests.get(k) ?? 0) + v);
    for (const [k, v] of s.cacheBytes ?? []) this.cacheByteCounts.set(k, (this.cacheByteCounts.get(k) ?? 0) + v);
    for (const [k, v] of s.refused ?? []) this.refusedCounts.set(k, (this.refusedCounts.get(k) ?? 0) + v);
    this.compressionsStarted += s.compressionsStarted ?? 0;
    this.absorbedLevels ??= new Map();
    for (const [k, v] of s.levels ?? []) this.absorbedLevels.set(k, (this.absorbedLevels.get(k) ?? 0) + v);
    for (const [k, h] of s.histograms ?? []) {
      const mine = this.histograms.get(k);
      if (!mine) this.histograms.set(k, { buckets: [...h.buckets], count: h.count, sum: h.sum });
      else {
        h.buckets.forEach((v, i) => (mine.buckets[i] = (mine.buckets[i] ?? 0) + v));
        mine.count += h.count;
        mine.sum += h.sum;
      }
    }
  }

  /** One observation (seconds) of a histogram, with its labels (already rendered by labels()). */
  observe(name: HistogramName, labelText: string, seconds: number): void {
    const key = memoKey(this.histogramKeys, name, labelText, histogramKey);
    let h = this.histograms.get(key);
    if (!h) this.histograms.set(key, (h = { buckets: new Array<number>(HISTOGRAMS[name].buckets.length).fill(0), count: 0, sum: 0 }));
    const bounds = HISTOGRAMS[name].buckets;
    // Stored per bucket, made cumulative when rendered.
    let i = 0;
    while (i < bounds.length && seconds > bounds[i]!) i++;
    if (i < bounds.length) h.buckets[i]!++;
    h.count++;
    h.sum += seconds;
  }

  /** A narinfo answered: found (hit) or not (miss), in `seconds`. */
  narinfo(seconds: number, hit: boolean): void {
    this.observe('eris_narinfo_seconds', hit ? 'result="hit"' : 'result="miss"', seconds);
  }

  /** A pushed path's import into the store took `seconds`. */
  pushImport(seconds: number, ok: boolean): void {
    this.observe('eris_push_import_seconds', ok ? 'result="ok"' : 'result="failed"', seconds);
  }

  /** A request answered 503 by admission control: `nar_streams`, `pending_requests` or `compression_queue`. */
  refused(reason: string): void {
    const k = labels({ reason });
    this.refusedCounts.set(k, (this.refusedCounts.get(k) ?? 0) + 1);
  }

  /** Rendered label pairs by cache name and kind (a few per cache): once, not per request. */
  private cacheLabels = new Map<string, string>();
  private cacheLabel(cache: string, name: 'kind' | 'direction', value: string): string {
    const id = `${cache}\0${value}`;
    let k = this.cacheLabels.get(id);
    if (k === undefined) this.cacheLabels.set(id, (k = labels({ cache, [name]: value })));
    return k;
  }

  cacheRequest(cache: string, kind: 'narinfo_hit' | 'narinfo_miss' | 'nar' | 'push'): void {
    const k = this.cacheLabel(cache, 'kind', kind);
    this.cacheRequests.set(k, (this.cacheRequests.get(k) ?? 0) + 1);
  }

  cacheBytes(cache: string, direction: 'sent' | 'received', n: number): void {
    const k = this.cacheLabel(cache, 'direction', direction);
    this.cacheByteCounts.set(k, (this.cacheByteCounts.get(k) ?? 0) + n);
  }

  /** A request answered: `route` is the matched route's pattern (c.req.routePath), named by routeName. */
  request(route: string, status: number, method = 'GET'): void {
    const name = routeName(route, method);
    const k = memoKey(this.requestKeys, name, status, requestKey);
    this.requests.set(k, (this.requests.get(k) ?? 0) + 1);
  }

  sent(route: string, n: number, method = 'GET'): void {
    const name = routeName(route, method);
    const k = memoKey(this.requestKeys, name, -1, requestKey);
    this.bytes.set(k, (this.bytes.get(k) ?? 0) + n);
  }

  narStream(seconds: number, ok: boolean): void {
    if (!ok) this.narFailures++;
    this.narCount++;
    this.narSum += seconds;
    for (let i = 0; i < DURATION_BUCKETS.length; i++) if (seconds <= DURATION_BUCKETS[i]!) this.narBuckets[i]!++;
  }

  render(): string {
    const out: string[] = [];
    const counter = (name: string, help: string, m: Map<string, number>) => {
      out.push(`# HELP ${name} ${help}`, `# TYPE ${name} counter`);
      for (const [k, v] of m) out.push(`${name}{${k}} ${v}`);
    };
    counter('eris_requests_total', 'HTTP requests by route and status.', this.requests);
    counter('eris_sent_bytes_total', 'Response body bytes sent, by route.', this.bytes);
    counter('eris_cache_requests_total', 'Requests by cache and kind (narinfo_hit, narinfo_miss, nar, push).', this.cacheRequests);
    counter('eris_cache_nar_bytes_total', 'NAR bytes by cache and direction (sent to clients, received in pushes).', this.cacheByteCounts);
    out.push('# HELP eris_nar_stream_seconds Time to stream a NAR to the client.', '# TYPE eris_nar_stream_seconds histogram');
    DURATION_BUCKETS.forEach((b, i) => out.push(`eris_nar_stream_seconds_bucket{le="${b}"} ${this.narBuckets[i]}`));
    out.push(`eris_nar_stream_seconds_bucket{le="+Inf"} ${this.narCount}`, `eris_nar_stream_seconds_sum ${this.narSum}`, `eris_nar_stream_seconds_count ${this.narCount}`);
    out.push('# HELP eris_nar_stream_failures_total NAR streams that ended in an error or an abort.', '# TYPE eris_nar_stream_failures_total counter', `eris_nar_stream_failures_total ${this.narFailures}`);
    out.push('# HELP eris_signature_cache_hits_total narinfo signatures served from the cache.', '# TYPE eris_signature_cache_hits_total counter', `eris_signature_cache_hits_total ${this.sigCacheHits}`);
    out.push('# HELP eris_signature_cache_misses_total narinfo signatures computed.', '# TYPE eris_signature_cache_misses_total counter', `eris_signature_cache_misses_total ${this.sigCacheMisses}`);
    const byName = new Map<string, [string, HistogramData][]>();
    for (const [key, h] of this.histograms) {
      const [name, labelText] = key.split('\0') as [string, string];
      byName.set(name, [...(byName.get(name) ?? []), [labelText, h]]);
    }
    for (const [name, def] of Object.entries(HISTOGRAMS)) {
      out.push(`# HELP ${name} ${def.help}`, `# TYPE ${name} histogram`);
      for (const [labelText, h] of byName.get(name) ?? []) {
        const sep = labelText ? ',' : '';
        let cumulative = 0;
        def.buckets.forEach((b, i) => {
          cumulative += h.buckets[i] ?? 0;
          out.push(`${name}_bucket{${labelText}${sep}le="${b}"} ${cumulative}`);
        });
        out.push(`${name}_bucket{${labelText}${sep}le="+Inf"} ${h.count}`, `${name}_sum${labelText ? `{${labelText}}` : ''} ${h.sum}`, `${name}_count${labelText ? `{${labelText}}` : ''} ${h.count}`);
      }
    }
    counter('eris_refused_total', 'Requests answered 503 + Retry-After by admission control, by reason (nar_streams, pending_requests, compression_queue).', this.refusedCounts);
    out.push('# HELP eris_compressions_started_total Compressions of NARs started (one per NAR, however many requests share it).', '# TYPE eris_compressions_started_total counter', `eris_compressions_started_total ${this.compressionsStarted}`);
    for (const [name, l] of Object.entries(this.levels)) {
      out.push(`# HELP ${name} ${l.help}`, `# TYPE ${name} gauge`, `${name} ${this.absorbedLevels?.get(name) ?? (this.absorbedLevels ? 0 : l.read())}`);
    }
    for (const [name, fn] of Object.entries(this.gauges)) out.push(`# HELP ${name} ${GAUGE_HELP[name] ?? name.replace(/_/g, ' ') + '.'}`, `# TYPE ${name} gauge`, `${name} ${fn()}`);
    out.push('# HELP eris_uptime_seconds Seconds since this origin started.', '# TYPE eris_uptime_seconds gauge', `eris_uptime_seconds ${(Date.now() - this.started) / 1000}`);
    return out.join('\n') + '\n';
  }
}
