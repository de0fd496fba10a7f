/**
 * A real Prometheus (Debian's package) scrapes a running `eris serve` — two
 * cluster workers, after real `nix copy` traffic through the Worker under
 * wrangler dev — as a stock scrape config does: once on `metrics_bind` (no
 * credential) and once on the main port with `authorization: credentials_file`
 * (the metrics token). Both targets are up and the request counters and
 * histograms are queryable through Prometheus's HTTP API; a job without the
 * credential is down with the 401. A text with `\`, `"` and newline in label
 * values comes back through the API exactly as it was. Prometheus runs with
 * its own temp storage dir, on a free port, scraping every second.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { freePort, startProcess, waitFor, waitForOutput, type Proc } from '../helpers/processes.ts';
import { nixCopyFrom, useStack } from '../helpers/stack.ts';
import { Metrics } from '../../origin/server/metrics.ts';
import { NARINFO_ROUTE } from '../../origin/server/app.ts';

const fixture = inject('fixture');
const prometheusMissing = spawnSync('prometheus', ['--version']).error !== undefined;
const skip = !fixture || (prometheusMissing && process.env.CI !== 'true');
const METRICS_TOKEN = 'prometheus-scrapes-eris-0123456789';
const HOSTILE = 'we\\ird "cache"\nname';

interface Target {
  labels: { job: string };
  health: 'up' | 'down' | 'unknown';
  lastError: string;
}
interface Sample {
  metric: Record<string, string>;
  value: [number, string];
}

describe.skipIf(skip)('a real Prometheus scraping eris serve', () => {
  let metricsUrl = '';
  let prometheus: Proc | undefined;
  let promUrl = '';
  let hostile: Server | undefined;
  const s = useStack(() => ({
    root(dir) {
      writeFileSync(join(dir, 'metrics-token'), METRICS_TOKEN + '\n', { mode: 0o600 });
      writeFileSync(join(dir, 'eris.toml'), `workers = 2\nmetrics_bind = "127.0.0.1:0"\nmetrics_token_file = "${join(dir, 'metrics-token')}"\n`);
      return fixture!.root;
    },
    originArgs: (dir) => ['--config', join(dir, 'eris.toml')],
  }));

  beforeAll(async () => {
    // Each worker logs the shared listener's address once it listens.
    const out = await waitForOutput(s.origin, /eris metrics listening/, 30_000);
    metricsUrl = /"url":"(http:\/\/127\.0\.0\.1:\d+\/metrics)"/.exec(out)![1]!;

    // Real traffic first: the closure through the edge with Nix.
    const copy = await nixCopyFrom(s, { to: join(s.dir, 'client-store'), paths: [fixture!.top] });
    expect(copy.code, copy.stderr).toBe(0);

    // A target whose label values hold a backslash, a double quote and a newline.
    const m = new Metrics();
    m.cacheRequest(HOSTILE, 'narinfo_hit');
    m.request(NARINFO_ROUTE, 200);
    hostile = createServer((_, res) => res.writeHead(200, { 'Content-Type': 'text/plain; version=0.0.4' }).end(m.render()));
    await new Promise<void>((r) => hostile!.listen(0, '127.0.0.1', r));

    const dir = join(s.dir, 'prometheus');
    mkdirSync(join(dir, 'data'), { recursive: true });
    const origin = new URL(s.origin.url).host;
    const job = (name: string, target: string, extra = '') => `  - job_name: ${name}\n    static_configs: [{ targets: ['${target}'] }]\n${extra}`;
    writeFileSync(join(dir, 'prometheus.yml'), [
      'global:',
      '  scrape_interval: 1s',
      '  scrape_timeout: 1s',
      'scrape_configs:',
      job('eris-metrics-bind', new URL(metricsUrl).host),
      job('eris-bearer', origin, `    authorization: { type: Bearer, credentials_file: ${join(s.dir, 'metrics-token')} }\n`),
      job('eris-no-credential', origin),
      job('hostile', `127.0.0.1:${(hostile.address() as AddressInfo).port}`),
    ].join('\n'));
    const port = await freePort();
    promUrl = `http://127.0.0.1:${port}`;
    prometheus = startProcess('prometheus', [
      `--config.file=${join(dir, 'prometheus.yml')}`,
      `--storage.tsdb.path=${join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
      '--log.level=warn',
    ], { cwd: dir });
    await waitFor(`${promUrl}/-/ready`, prometheus, 60_000);
  });

  afterAll(async () => {
    await prometheus?.stop();
    await new Promise<void>((r) => (hostile ? hostile.close(() => r()) : r()));
  });

  const api = async <T>(path: string): Promise<T> => {
    const res = await fetch(promUrl + path, { signal: AbortSignal.timeout(10_000) });
    const body = (await res.json()) as { status: string; data: T; error?: string };
    if (body.status !== 'success') throw new Error(`${path}: ${body.error}`);
    return body.data;
  };
  const query = (q: string) => api<{ result: Sample[] }>(`/api/v1/query?query=${encodeURIComponent(q)}`).then((d) => d.result);

  /** Waits (bounded) until every job has been scraped once and reports its targets. */
  async function targets(): Promise<Map<string, Target>> {
    const deadline = Date.now() + 60_000;
    let byJob = new Map<string, Target>();
    while (Date.now() < deadline) {
      const data = await api<{ activeTargets: Target[] }>('/api/v1/targets');
      byJob = new Map(data.activeTargets.map((t) => [t.labels.job, t]));
      if (byJob.size === 4 && [...byJob.values()].every((t) => t.health !== 'unknown')) return byJob;
      await new Promise((r) => setTimeout(r, 500));
    }
    throw new Error(`targets not scraped in time: ${JSON.stringify([...byJob.values()])}`);
  }

  /** The query's samples once it has some (the first scrapes may not have landed yet). */
  async function samples(q: string): Promise<Sample[]> {
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline) {
      const r = await query(q);
      if (r.length) return r;
      await new Promise((r) => setTimeout(r, 500));
    }
    throw new Error(`no samples for ${q}`);
  }

  it('scrapes metrics_bind without a credential and the main port with the Bearer token; without it the target is down with the 401', async () => {
    const t = await targets();
    expect(t.get('eris-metrics-bind')).toMatchObject({ health: 'up', lastError: '' });
    expect(t.get('eris-bearer')).toMatchObject({ health: 'up', lastError: '' });
    expect(t.get('eris-no-credential')!.health).toBe('down');
    expect(t.get('eris-no-credential')!.lastError).toContain('401');
    const up = await query('up');
    expect(Object.fromEntries(up.map((u) => [u.metric.job, u.value[1]]))).toEqual({ 'eris-metrics-bind': '1', 'eris-bearer': '1', 'eris-no-credential': '0', hostile: '1' });
  });

  it('answers the request counters and histograms of both workers through the HTTP API, as /metrics says them', async () => {
    const closure = fixture!.closure.length;
    // Every narinfo and NAR the copy fetched, summed over both cluster workers.
    const narinfo = await samples('sum by (job) (eris_requests_total{job=~"eris-.*",route="narinfo",status="200"})');
    for (const r of narinfo) expect(Number(r.value[1])).toBeGreaterThanOrEqual(closure);
    expect(narinfo.map((r) => r.metric.job).sort()).toEqual(['eris-bearer', 'eris-metrics-bind']);
    const nar = await samples('eris_requests_total{job="eris-metrics-bind",route="nar",status="200"}');
    expect(Number(nar[0]!.value[1])).toBeGreaterThanOrEqual(closure);
    const hits = await samples('eris_cache_requests_total{job="eris-metrics-bind",cache="default",kind="narinfo_hit"}');
    expect(Number(hits[0]!.value[1])).toBeGreaterThanOrEqual(closure);
    const p99 = await samples('histogram_quantile(0.99, sum by (le) (eris_narinfo_seconds_bucket{job="eris-metrics-bind",result="hit"}))');
    expect(Number(p99[0]!.value[1])).toBeGreaterThan(0);
    expect(Number(p99[0]!.value[1])).toBeLessThan(3);
    const streams = await samples('eris_nar_stream_seconds_count{job="eris-metrics-bind"}');
    expect(Number(streams[0]!.value[1])).toBeGreaterThanOrEqual(closure);
    // The same figure as the text itself (no traffic since).
    const text = await (await fetch(metricsUrl)).text();
    const inText = Number(/^eris_requests_total\{route="nar",status="200"\} (\d+)$/m.exec(text)![1]);
    expect(Number(nar[0]!.value[1])).toBe(inText);
  });

  it('keeps label values with a backslash, a double quote and a newline exactly as they were', async () => {
    const r = await samples('eris_cache_requests_total{job="hostile"}');
    expect(r).toHaveLength(1);
    expect(r[0]!.metric.cache).toBe(HOSTILE);
    expect(r[0]!.value[1]).toBe('1');
  });

  it('deploy/grafana/eris-dashboard.json asks only what this Prometheus answers, of metrics eris exports', async () => {
    const dash = JSON.parse(readFileSync(new URL('../../deploy/grafana/eris-dashboard.json', import.meta.url), 'utf8')) as { panels: { title: string; targets: { expr: string }[] }[] };
    const text = await (await fetch(metricsUrl)).text();
    for (const panel of dash.panels) {
      for (const t of panel.targets) {
        const expr = t.expr.replaceAll('$job', 'eris-metrics-bind').replaceAll('$__rate_interval', '1m');
        await expect(query(expr), `${panel.title}: ${expr}`).resolves.toBeDefined();
        // Every family it names is one eris declares (counters with no sample yet still have their # TYPE line).
        // (The compression gauges exist only with compression on; this origin serves plain NARs.)
        for (const name of (expr.match(/\beris_\w+/g) ?? []).filter((n) => !/^eris_(compressions_(running|queued)|nar_cache_bytes)$/.test(n))) expect(text, `${panel.title}: ${name}`).toMatch(new RegExp(`^# TYPE ${name.replace(/_(bucket|count|sum)$/, '')} `, 'm'));
      }
    }
  });

  it('refuses /metrics on the main port without the credential', async () => {
    const res = await fetch(s.origin.url + '/metrics');
    expect(res.status).toBe(401);
    expect(await res.text()).not.toContain('eris_requests_total');
    expect((await fetch(s.origin.url + '/metrics', { headers: { Authorization: `Bearer ${METRICS_TOKEN}x` } })).status).toBe(401);
    expect((await s.get('/metrics')).status).toBe(404); // the edge never forwards it
  });
});
