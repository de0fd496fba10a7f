/**
 * The operator's page as HTML: server-rendered with hono/html (every value
 * interpolated is escaped), charts as inline SVG, one inline stylesheet — no
 * script, no framework, nothing loaded from elsewhere. Narrow screens get
 * one column and tables that scroll sideways.
 */
import { html, raw } from 'hono/html';
import { renderPage, type Html } from './page.ts';
import { formatBytes } from '../../shared/bytes.ts';
import type { AdminCounts, AdminData, AdminPush, AdminSeries } from '../../shared/admin.ts';

/** One origin as the page shows it: its breaker's state and how its health check went. */
export interface OriginStatus {
  id: string;
  breaker: string;
  /** `ok`, an HTTP status, or what went wrong (timeout, unreachable, …). */
  health: string;
  ms: number;
}



const count = (n: number) => n.toLocaleString('en-US');

interface Series {
  key: keyof AdminCounts;
  label: string;
  color: string;
}
const BYTES: Series[] = [
  { key: 'narBytesSent', label: 'sent', color: '#2b6cb0' },
  { key: 'bytesReceived', label: 'received', color: '#c05621' },
];
const LOOKUPS: Series[] = [
  { key: 'narinfoHits', label: 'hits', color: '#2f855a' },
  { key: 'narinfoMisses', label: 'misses', color: '#a0aec0' },
];

/**
 * A bar chart of one series over the days: one group of bars per day. Each bar carries its day,
 * series and value as data attributes (what the browser test reads) and a <title> (what a
 * person sees on hover or a long press).
 */
export function barChart(o: { id: string; title: string; days: string[]; values: AdminCounts[]; series: Series[]; bytes: boolean }): Html {
  const W = 600;
  const H = 160;
  const top = 14;
  const bottom = 20;
  const max = Math.max(1, ...o.values.flatMap((v) => o.series.map((s) => v[s.key])));
  const slot = W / Math.max(1, o.days.length);
  const bar = Math.max(1, (slot - 2) / o.series.length);
  const fmt = o.bytes ? formatBytes : count;
  const rects = o.days.flatMap((day, i) =>
    o.series.map((s, j) => {
      const value = o.values[i]?.[s.key] ?? 0;
      const h = ((H - top - bottom) * value) / max;
      const x = i * slot + 1 + j * bar;
      return html`<rect x="${x.toFixed(1)}" y="${(H - bottom - h).toFixed(1)}" width="${bar.toFixed(1)}" height="${h.toFixed(1)}" fill="${s.color}" data-day="${day}" data-series="${s.key}" data-value="${value}"><title>${day} ${s.label}: ${fmt(value)}</title></rect>`;
    }),
  );
  return html`<figure class="chart" id="${o.id}">
<figcaption>${o.title} <span class="legend">${o.series.map((s) => html`<i style="background:${s.color}"></i>${s.label} `)}</span></figcaption>
<svg viewBox="0 0 ${W} ${H}" role="img" aria-label="${o.title}" preserveAspectRatio="none">
<line x1="0" y1="${H - bottom}" x2="${W}" y2="${H - bottom}" stroke="#999" stroke-width="1"/>
<text x="2" y="11" class="axis">${fmt(max)}</text>
${rects}
<text x="2" y="${H - 5}" class="axis">${o.days[0] ?? ''}</text>
<text x="${W - 2}" y="${H - 5}" class="axis" text-anchor="end">${o.days.at(-1) ?? ''}</text>
</svg>
</figure>`;
}

const seriesCharts = (kind: 'cache' | 'user', s: AdminSeries, days: string[]) => {
  const name = s.name === '' ? (kind === 'user' ? 'anonymous' : '(none)') : s.name;
  const id = `${kind}-${encodeURIComponent(s.name || '-')}`;
  return html`<section class="series" data-${kind}="${s.name}">
<h3>${name}</h3>
<p class="totals">${formatBytes(s.totals.narBytesSent)} sent in ${count(s.totals.nars)} NARs · ${formatBytes(s.totals.bytesReceived)} received in ${count(s.totals.pushes)} pushed paths · ${count(s.totals.narinfoHits)} hits, ${count(s.totals.narinfoMisses)} misses</p>
<div class="charts">
${barChart({ id: `${id}-bytes`, title: 'Bytes per day', days, values: s.days, series: BYTES, bytes: true })}
${barChart({ id: `${id}-lookups`, title: 'narinfo hits and misses per day', days, values: s.days, series: LOOKUPS, bytes: false })}
</div>
</section>`;
};

const pushCell = (p: AdminPush | null) =>
  p ? html`${p.at.replace('T', ' ').slice(0, 19)} by ${p.user || 'anonymous'}${p.token ? html` (<code>${p.token}</code>)` : ''}` : html`<span class="muted">never</span>`;

const baseName = (storePath: string) => storePath.slice(storePath.lastIndexOf('/') + 1);

export async function renderAdmin(o: { host: string; data: AdminData | null; from: string | null; problem?: string; origins: OriginStatus[] }): Promise<string> {
  const d = o.data;
  return renderPage({ title: `eris admin: ${o.host}`, style: STYLE, body: html`<h1>eris at ${o.host}</h1>
<p class="muted">${d ? html`Figures from origin <b>${o.from}</b>, ${d.generated.replace('T', ' ').slice(0, 19)} UTC, last ${d.days.length} days (UTC).` : ''}</p>
${o.problem ? html`<p class="warn" id="problem">${o.problem}</p>` : ''}
<h2>Origins</h2>
<div class="scroll"><table id="origins">
<thead><tr><th>origin</th><th>circuit breaker</th><th>health</th><th class="n">ms</th></tr></thead>
<tbody>${o.origins.map((x) => html`<tr data-origin="${x.id}"><td>${x.id}</td><td class="${x.breaker}">${x.breaker}</td><td>${x.health}</td><td class="n">${x.ms}</td></tr>`)}</tbody>
</table></div>
${d ? body(d) : ''}` });
}

const STYLE = `
body { font-family: system-ui, sans-serif; max-width: 72rem; margin: 1rem auto; padding: 0 .75rem; line-height: 1.4; color: #222; }
h1 { font-size: 1.4rem; } h2 { font-size: 1.15rem; margin-top: 2rem; border-bottom: 1px solid #ddd; } h3 { font-size: 1rem; margin: 1rem 0 .25rem; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; font-size: .9rem; }
th, td { text-align: left; padding: .25rem .6rem .25rem 0; border-bottom: 1px solid #eee; vertical-align: top; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; }
code { font-family: ui-monospace, monospace; font-size: .85rem; word-break: break-all; }
.charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(18rem, 1fr)); gap: .75rem; }
figure.chart { margin: 0; } figure.chart svg { width: 100%; height: 9rem; background: #fafafa; }
figcaption { font-size: .85rem; color: #444; }
.legend i { display: inline-block; width: .7rem; height: .7rem; margin: 0 .2rem 0 .5rem; vertical-align: middle; }
.axis { font-size: 10px; fill: #666; }
.totals, .muted { color: #555; font-size: .85rem; }
.closed { color: #2f855a; } .open { color: #c53030; font-weight: bold; } .half-open { color: #b7791f; }`;

function body(d: AdminData): Html {
  return html`<h2>Caches</h2>
<div class="scroll"><table id="caches">
<thead><tr><th>cache</th><th class="n">paths</th><th class="n">NAR bytes</th><th class="n">roots</th><th>last push</th></tr></thead>
<tbody>${d.caches.map((c) => html`<tr data-cache="${c.name}" data-paths="${c.paths ?? 'all'}" data-bytes="${c.bytes ?? ''}"><td>${c.name}${c.default ? html` <span class="muted">(default)</span>` : ''}</td><td class="n">${c.paths === null ? 'whole store' : count(c.paths)}</td><td class="n">${c.bytes === null ? '–' : formatBytes(c.bytes)}</td><td class="n">${count(c.roots)}</td><td>${pushCell(c.lastPush)}</td></tr>`)}</tbody>
</table></div>
<h2>Usage per cache</h2>
<div id="usage-caches">${d.usageByCache.map((s) => seriesCharts('cache', s, d.days))}</div>
<h2>Usage per user</h2>
<div id="usage-users">${d.usageByUser.length ? d.usageByUser.map((s) => seriesCharts('user', s, d.days)) : html`<p class="muted">No traffic recorded.</p>`}</div>
<h2>Tokens</h2>
<p class="muted">By token id (as <code>eris token list</code> shows them; revoked tokens stay here). Details: <code>eris usage --token ID</code>.</p>
<div class="scroll"><table id="tokens">
<thead><tr><th>token</th><th>user</th><th class="n">sent</th><th class="n">NARs</th><th class="n">received</th><th class="n">pushed</th><th class="n">hits</th><th class="n">misses</th></tr></thead>
<tbody>${d.usageByToken.map((t) => html`<tr data-token="${t.name}"><td><code>${t.name || '(none)'}</code></td><td>${t.user || 'anonymous'}</td><td class="n">${formatBytes(t.totals.narBytesSent)}</td><td class="n">${count(t.totals.nars)}</td><td class="n">${formatBytes(t.totals.bytesReceived)}</td><td class="n">${count(t.totals.pushes)}</td><td class="n">${count(t.totals.narinfoHits)}</td><td class="n">${count(t.totals.narinfoMisses)}</td></tr>`)}</tbody>
</table></div>
<h2>Top paths</h2>
<div class="scroll"><table id="top-paths">
<thead><tr><th>store path</th><th class="n">NARs</th><th class="n">bytes sent</th></tr></thead>
<tbody>${d.topPaths.map((p) => html`<tr><td><code title="${p.path}">${baseName(p.path)}</code></td><td class="n">${count(p.nars)}</td><td class="n">${formatBytes(p.bytes)}</td></tr>`)}</tbody>
</table></div>
<h2>Recent pushes</h2>
<div class="scroll"><table id="pushes">
<thead><tr><th>when (UTC)</th><th>cache</th><th>who</th><th>store path</th><th class="n">NAR size</th></tr></thead>
<tbody>${d.recentPushes.length ? d.recentPushes.map((p) => html`<tr><td>${p.at.replace('T', ' ').slice(0, 19)}</td><td>${p.cache}</td><td>${p.user || 'anonymous'}${p.token ? html` <code>${p.token}</code>` : ''}</td><td><code title="${p.storePath}">${baseName(p.storePath)}</code></td><td class="n">${formatBytes(p.narSize)}</td></tr>`) : raw('<tr><td colspan="5" class="muted">none recorded</td></tr>')}</tbody>
</table></div>`;
}
