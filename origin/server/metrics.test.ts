/**
 * /metrics as a stock Prometheus reads it: the text checked by the real
 * `promtool check metrics` (Debian's prometheus package), label values
 * escaped, readable route names, histograms, cluster snapshots, and who may
 * read it on the main port and on metrics_bind.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { escapeLabel, Metrics, routeName } from './metrics.ts';
import { NARINFO_ROUTE } from './app.ts';
import { PUSH_PATHS } from '../push/routes.ts';
import { inProcessOrigin, startTestOrigin, type TestOrigin } from '../../test/helpers/origin.ts';
import { createMemoryStore } from '../../test/helpers/memory-store.ts';
import { resolveConfig, ConfigError } from '../config/index.ts';
import { hashOf } from '../../test/helpers/nix.ts';
import { tempDir } from '../../test/helpers/temp-dir.ts';

const promtoolMissing = spawnSync('promtool', ['--version']).error !== undefined;
/** promtool is a real part of these tests: skipped on a laptop without it, a failure under CI. */
const skipPromtool = promtoolMissing && process.env.CI !== 'true';

/** `promtool check metrics` on a text: its exit status and what it said. */
export function promtoolCheck(text: string): { status: number | null; output: string } {
  const r = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
  return { status: r.status, output: `${r.stdout}${r.stderr}` };
}

/** Label values with a backslash, a double quote and a newline: what a careless exposition breaks on. */
const HOSTILE = 'we\\ird "cache"\nname';

function busyMetrics(): Metrics {
  const m = new Metrics();
  m.request(NARINFO_ROUTE, 200);
  m.request(`/:cache${NARINFO_ROUTE}`, 404);
  m.request('/nar/:file', 200, 'HEAD');
  m.request(PUSH_PATHS[0], 200, 'PUT');
  m.sent(NARINFO_ROUTE, 512);
  m.cacheRequest(HOSTILE, 'narinfo_hit');
  m.cacheBytes(HOSTILE, 'sent', 1234);
  m.refused('nar_streams');
  m.narStream(0.2, true);
  m.narinfo(0.0004, true);
  m.narinfo(0.003, false);
  m.pushImport(1.5, true);
  return m;
}

describe('the exposition', () => {
  it('escapes backslash, double quote and newline in label values', () => {
    expect(escapeLabel(HOSTILE)).toBe('we\\\\ird \\"cache\\"\\nname');
    const text = busyMetrics().render();
    expect(text).toContain('eris_cache_requests_total{cache="we\\\\ird \\"cache\\"\\nname",kind="narinfo_hit"} 1');
    // No raw newline inside a sample line: every line is a comment or `name{…} value`.
    for (const line of text.trimEnd().split('\n')) expect(line).toMatch(/^(# (HELP|TYPE) \w+ .+|\w+(\{.*\})? [-+\d.e]+|\w+(\{.*\})? \+?Inf)$/);
  });

  it.skipIf(skipPromtool)('passes the real promtool check metrics, hostile names and histograms included', () => {
    const text = busyMetrics().render();
    const r = promtoolCheck(text);
    expect(r.output).toBe('');
    expect(r.status).toBe(0);
    // And promtool does notice a broken text (so this check can fail).
    expect(promtoolCheck(text.replace('we\\\\ird', 'we\\ird')).status).not.toBe(0);
  });

  it('names routes as an operator reads them, whatever the cache, with PUTs and POSTs as push', () => {
    expect(routeName(NARINFO_ROUTE)).toBe('narinfo');
    expect(routeName(`/:cache${NARINFO_ROUTE}`)).toBe('narinfo');
    expect(routeName('/:cache/:file{[^/]+\\.ls}')).toBe('listing');
    expect(routeName('/nar/:file', 'HEAD')).toBe('nar');
    expect(routeName('/:cache/log/:drv')).toBe('log');
    expect(routeName('/realisations/:file')).toBe('realisation');
    expect(routeName('/nix-cache-info')).toBe('nix_cache_info');
    expect(routeName('/v1/public-key')).toBe('v1_public_key');
    expect(routeName('/metrics')).toBe('metrics');
    expect(routeName('/*')).toBe('other');
    for (const p of PUSH_PATHS) expect(routeName(p, 'PUT')).toBe('push');
    expect(routeName('/:cache/v1/push/missing', 'POST')).toBe('push');
    const text = busyMetrics().render();
    expect(text).toContain('eris_requests_total{route="narinfo",status="200"} 1');
    expect(text).toContain('eris_requests_total{route="narinfo",status="404"} 1');
    expect(text).toContain('eris_requests_total{route="push",status="200"} 1');
    expect(text).not.toContain(':file');
  });

  it('renders histograms with cumulative buckets, sum and count, and adds up snapshots from other workers', () => {
    const a = busyMetrics();
    const b = new Metrics();
    b.narinfo(0.02, true);
    b.pushImport(400, false);
    a.absorb(b.snapshot());
    const text = a.render();
    expect(text).toContain('# TYPE eris_narinfo_seconds histogram');
    expect(text).toContain('eris_narinfo_seconds_bucket{result="hit",le="0.0005"} 1');
    expect(text).toContain('eris_narinfo_seconds_bucket{result="hit",le="0.025"} 2');
    expect(text).toContain('eris_narinfo_seconds_bucket{result="hit",le="+Inf"} 2');
    expect(text).toContain('eris_narinfo_seconds_count{result="hit"} 2');
    expect(text).toContain('eris_narinfo_seconds_bucket{result="miss",le="0.0025"} 0');
    expect(text).toContain('eris_narinfo_seconds_bucket{result="miss",le="0.005"} 1');
    expect(text).toContain('eris_push_import_seconds_bucket{result="ok",le="2.5"} 1');
    expect(text).toContain('eris_push_import_seconds_bucket{result="failed",le="300"} 0');
    expect(text).toContain('eris_push_import_seconds_bucket{result="failed",le="+Inf"} 1');
    expect(text).toContain('eris_push_import_seconds_sum{result="failed"} 400');
  });
});

describe('who may read /metrics', () => {
  const dir = tempDir('eris-metrics-');
  const tokenFile = join(dir, 'metrics-token');
  writeFileSync(tokenFile, 'scrape-me-please-0123456789\n');

  it('on the main port: the metrics token as Bearer, or the edge secret; anything else is a 401 naming Bearer', async () => {
    const origin = inProcessOrigin(createMemoryStore([]), { metricsTokenFile: tokenFile });
    expect((await origin.get('/metrics', { secret: null, headers: { Authorization: 'Bearer scrape-me-please-0123456789' } })).status).toBe(200);
    expect((await origin.get('/metrics')).status).toBe(200);
    for (const headers of [{} as Record<string, string>, { Authorization: 'Bearer scrape-me-please-0123456780' }, { Authorization: 'Basic c2NyYXBlLW1lLXBsZWFzZS0wMTIzNDU2Nzg5' }]) {
      const res = await origin.get('/metrics', { secret: null, headers });
      expect(res.status).toBe(401);
      expect(res.headers.get('www-authenticate')).toBe('Bearer realm="eris metrics"');
      expect(await res.text()).not.toContain('eris_');
    }
    // Without metrics_token_file, no Bearer opens it.
    const plain = inProcessOrigin(createMemoryStore([]));
    expect((await plain.get('/metrics', { secret: null, headers: { Authorization: 'Bearer ' } })).status).toBe(401);
  });

  it('checks metrics_bind and metrics_token_file once, at start-up', () => {
    const resolve = (flags: Record<string, unknown>) => resolveConfig({ flags: { signKeyPaths: ['k'], edgeSecret: 'x'.repeat(16), ...flags }, env: {} });
    expect(resolve({ metricsBind: '9102' }).metricsBind).toEqual({ host: '127.0.0.1', port: 9102 });
    expect(resolve({ metricsBind: 9102 }).metricsBind).toEqual({ host: '127.0.0.1', port: 9102 });
    expect(resolve({ metricsBind: '[::1]:9102' }).metricsBind).toEqual({ host: '::1', port: 9102 });
    expect(resolve({}).metricsBind).toBeUndefined();
    expect(() => resolve({ metricsBind: 'localhost' })).toThrow(/^metrics_bind: expected HOST:PORT/);
    expect(() => resolve({ metricsBind: '70000' })).toThrow(ConfigError);
    expect(resolve({ metricsTokenFile: tokenFile }).metricsToken).toBe('scrape-me-please-0123456789');
    writeFileSync(join(dir, 'short'), 'short\n');
    expect(() => resolve({ metricsTokenFile: join(dir, 'short') })).toThrow(/^metrics_token_file: .* at least 16 characters/);
    expect(() => resolve({ metricsTokenFile: join(dir, 'absent') })).toThrow(/^metrics_token_file: cannot read .*ENOENT/);
  });
});

const fixture = inject('fixture');

describe.skipIf(!fixture)('the metrics_bind listener', () => {
  let origin: TestOrigin;
  beforeAll(async () => {
    origin = await startTestOrigin(fixture!.root, { metricsBind: '127.0.0.1:0' });
  });
  afterAll(() => origin?.close());

  it('answers GET /metrics without any credential, counting the main port’s requests, and nothing else', async () => {
    expect(origin.metricsUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
    expect(new URL(origin.metricsUrl!).port).not.toBe(String(origin.port));
    expect((await origin.get(`/${hashOf(fixture!.top)}.narinfo`)).status).toBe(200);
    const res = await fetch(origin.metricsUrl!);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/plain; version=0.0.4; charset=utf-8');
    const text = await res.text();
    expect(text).toMatch(/^eris_requests_total\{route="narinfo",status="200"\} [1-9]\d*$/m);
    expect(text).toMatch(/^eris_narinfo_seconds_count\{result="hit"\} [1-9]\d*$/m);
    if (!skipPromtool) expect(promtoolCheck(text)).toEqual({ status: 0, output: '' });
    const base = origin.metricsUrl!.slice(0, -'/metrics'.length);
    for (const path of ['/', '/nix-cache-info', `/${hashOf(fixture!.top)}.narinfo`]) expect((await fetch(base + path)).status).toBe(404);
    expect((await fetch(origin.metricsUrl!, { method: 'POST' })).status).toBe(405);
    // The main port still wants a credential.
    expect((await origin.get('/metrics', { secret: null })).status).toBe(401);
  });
});
