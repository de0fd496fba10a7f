/**
 * Prometheus text-format metrics for the origin: requests by route and
 * status, bytes sent, NAR stream durations, signature cache hits. Plain
 * counters in memory: cheap enough for the hot path.
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
}

const DURATION_BUCKETS = [0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300];

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
  }

  /** A request answered 503 by admission control: `nar_streams`, `pending_requests` or `compression_queue`. */
  refused(reason: string): void {
    const k = `reason="${reason}"`;
    this.refusedCounts.set(k, (this.refusedCounts.get(k) ?? 0) + 1);
  }

  cacheRequest(cache: string, kind: 'narinfo_hit' | 'narinfo_miss' | 'nar' | 'push'): void {
    const k = `cache="${cache}",kind="${kind}"`;
    this.cacheRequests.set(k, (this.cacheRequests.get(k) ?? 0) + 1);
  }

  cacheBytes(cache: string, direction: 'sent' | 'received', n: number): void {
    const k = `cache="${cache}",direction="${direction}"`;
    this.cacheByteCounts.set(k, (this.cacheByteCounts.get(k) ?? 0) + n);
  }

  request(route: string, status: number): void {
    const k = `route="${route}",status="${status}"`;
    this.requests.set(k, (this.requests.get(k) ?? 0) + 1);
  }

  sent(route: string, n: number): void {
    const k = `route="${route}"`;
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
    counter('eris_refused_total', 'Requests answered 503 + Retry-After by admission control, by reason (nar_streams, pending_requests, compression_queue).', this.refusedCounts);
    out.push('# HELP eris_compressions_started_total Compressions of NARs started (one per NAR, however many requests share it).', '# TYPE eris_compressions_started_total counter', `eris_compressions_started_total ${this.compressionsStarted}`);
    for (const [name, l] of Object.entries(this.levels)) {
      out.push(`# HELP ${name} ${l.help}`, `# TYPE ${name} gauge`, `${name} ${this.absorbedLevels?.get(name) ?? (this.absorbedLevels ? 0 : l.read())}`);
    }
    for (const [name, fn] of Object.entries(this.gauges)) out.push(`# TYPE ${name} gauge`, `${name} ${fn()}`);
    out.push('# TYPE eris_uptime_seconds gauge', `eris_uptime_seconds ${(Date.now() - this.started) / 1000}`);
    return out.join('\n') + '\n';
  }
}
