/**
 * Soak test: many concurrent clients through the Worker (`wrangler dev`) to
 * `eris serve` on loopback, for a bounded time, with a mixed load — narinfo
 * hits and misses, small and 4 MB NARs. Reports requests per second, latency
 * percentiles (to the last body byte), answers by status, and the origin's
 * (and the edge's) RSS and open descriptors sampled every second.
 *
 *   npm run soak                                  # 200 clients, 60 s
 *   npx node --disable-warning=ExperimentalWarning test/soak/soak.ts --clients 50 --seconds 20 [--json out.json] [--only narinfo-hit|narinfo-miss|nar-small|nar-large]
 *
 * Exits 1 when any answer was unexpected or the origin's descriptors did not
 * come back to their baseline. `npm test` runs a short version (soak.test.ts).
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { Agent, request } from 'node:http';
import { addRandomFile, openFds, rssKiB, sleep } from '../helpers/faults.ts';
import { narInfoOf, startStack, type Stack } from '../helpers/stack.ts';
import { buildFixtureStore, hashOf } from '../helpers/nix.ts';

export interface SoakOptions {
  clients: number;
  seconds: number;
  /** Paths whose narinfo and NAR are requested. */
  paths: string[];
  /** Only one kind of request (to see which one costs what); mixed by default. */
  only?: Kind;
  /** Also wait (≤ 20 s) for the edge's idle keep-alive connections to the origin to close before the final count. */
  settleSockets?: boolean;
  /** Log progress lines (the CLI). */
  say?: (line: string) => void;
}

export interface Sample {
  t: number;
  originRssMiB: number;
  originFds: number;
  /** wrangler dev's processes (node, workerd): RSS in MiB by command name. */
  edgeRssMiB: Record<string, number>;
}

export interface SoakReport {
  clients: number;
  seconds: number;
  requests: number;
  rps: number;
  bytes: number;
  byStatus: Record<string, number>;
  byKind: Record<string, { count: number; p50: number; p90: number; p99: number; max: number }>;
  latency: { p50: number; p90: number; p99: number; max: number };
  /** Answers other than the expected one (200 for hits and NARs, 404 for misses), and transport errors. */
  unexpected: { count: number; examples: string[] };
  samples: Sample[];
  origin: { fdsBefore: number; fdsPeak: number; fdsAfter: number; filesBefore: number; filesAfter: number; socketsAfter: number; rssBeforeMiB: number; rssPeakMiB: number; rssAfterMiB: number; sqliteBefore: number; sqliteAfter: number };
}

export type Kind = 'narinfo-hit' | 'narinfo-miss' | 'nar-small' | 'nar-large';
const KINDS: Kind[] = ['narinfo-hit', 'narinfo-miss', 'nar-small', 'nar-large'];

const NIX32 = '0123456789abcdfghijklmnpqrsvwxyz';

function percentile(sorted: number[], p: number): number {
  if (!sorted.length) return 0;
  return Math.round(sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]! * 10) / 10;
}

/** RSS of the processes in a process group (wrangler's node and its workerd), MiB, by command name. */
function groupRssMiB(pgid: number): Record<string, number> {
  const kib: Record<string, number> = {};
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[2]) !== pgid) continue; // field 5 of stat: pgrp
      const name = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      kib[name] = (kib[name] ?? 0) + (rssKiB(Number(d)) || 0);
    } catch {
      // gone
    }
  }
  return Object.fromEntries(Object.entries(kib).map(([k, v]) => [k, Math.round(v / 1024)]));
}

export async function runSoak(stack: Stack, o: SoakOptions): Promise<SoakReport> {
  const say = o.say ?? (() => {});
  const infos = await Promise.all(o.paths.map((p) => narInfoOf(stack, p)));
  const large = infos.filter((i) => i.narSize >= 1 << 20);
  const small = infos.filter((i) => i.narSize < 1 << 20);
  if (!large.length || !small.length) throw new Error('soak: need at least one NAR under 1 MiB and one over');
  const pid = stack.origin.child.pid!;
  const edgePgid = stack.edge.child.pid!;
  const agent = new Agent({ keepAlive: true, maxSockets: o.clients });
  const port = stack.edge.port;
  /** GET through the edge on a keep-alive connection: status, cache-control, body length. */
  const get = (path: string) =>
    new Promise<{ status: number; cc: string | undefined; length: number }>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port, path, headers: stack.auth, agent }, (res) => {
        let length = 0;
        res.on('data', (d: Buffer) => (length += d.length));
        res.on('end', () => (res.complete ? resolve({ status: res.statusCode!, cc: res.headers['cache-control'], length }) : reject(new Error('truncated body'))));
        res.on('error', reject);
      });
      req.setTimeout(60_000, () => req.destroy(new Error('timeout (60 s)')));
      req.on('error', reject);
      req.end();
    });

  // One of each kind first, so the baseline is taken warm.
  for (const i of infos) await get('/' + i.url);
  await sleep(500);
  const fds0 = openFds(pid);
  const files = (fds: string[]) => fds.filter((f) => !f.startsWith('socket:')).length;
  const before = { fds: fds0.length, files: files(fds0), sqlite: fds0.filter((f) => /db\.sqlite/.test(f)).length, rss: rssKiB(pid) / 1024 };

  let seed = 42;
  const rand = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32);
  const pick = <T>(xs: T[]) => xs[Math.floor(rand() * xs.length)]!;
  // The mix: 50 % narinfo hits, 25 % misses, 18 % small NARs, 7 % 4 MiB NARs.
  const share: Record<Kind, [number, number]> = { 'narinfo-hit': [0, 0.5], 'narinfo-miss': [0.5, 0.75], 'nar-small': [0.75, 0.93], 'nar-large': [0.93, 1] };
  const next = (): { kind: Kind; url: string; expect: number; size?: number } => {
    const r = o.only ? share[o.only][0] + rand() * (share[o.only][1] - share[o.only][0]) : rand();
    if (r < 0.5) return { kind: 'narinfo-hit', url: `/${hashOf(pick(o.paths))}.narinfo`, expect: 200 };
    if (r < 0.75) return { kind: 'narinfo-miss', url: `/${Array.from({ length: 32 }, () => NIX32[Math.floor(rand() * 32)]).join('')}.narinfo`, expect: 404 };
    if (r < 0.93) {
      const i = pick(small);
      return { kind: 'nar-small', url: '/' + i.url, expect: 200, size: i.narSize };
    }
    const i = pick(large);
    return { kind: 'nar-large', url: '/' + i.url, expect: 200, size: i.narSize };
  };

  const lat: Record<Kind, number[]> = { 'narinfo-hit': [], 'narinfo-miss': [], 'nar-small': [], 'nar-large': [] };
  const byStatus: Record<string, number> = {};
  const unexpected: string[] = [];
  let unexpectedCount = 0;
  let bytes = 0;
  const samples: Sample[] = [];
  const t0 = Date.now();
  const deadline = t0 + o.seconds * 1000;

  const sampler = setInterval(() => {
    try {
      samples.push({ t: Math.round((Date.now() - t0) / 100) / 10, originRssMiB: Math.round(rssKiB(pid) / 1024), originFds: openFds(pid).length, edgeRssMiB: groupRssMiB(edgePgid) });
      const last = samples.at(-1)!;
      const done = Object.values(lat).reduce((n, l) => n + l.length, 0);
      say(`t=${last.t}s requests=${done} origin rss=${last.originRssMiB} MiB fds=${last.originFds} edge rss ${fmtEdge(last.edgeRssMiB)}`);
    } catch {
      // the origin went away; the answers will say so
    }
  }, 1000);

  async function client() {
    while (Date.now() < deadline) {
      const req = next();
      const started = performance.now();
      let status = 0;
      let got = 0;
      try {
        const res = await get(req.url);
        status = res.status;
        got = res.length;
        if (res.cc !== 'private, no-store') throw new Error(`cache-control ${res.cc}`);
        if (req.size !== undefined && status === 200 && got !== req.size) throw new Error(`short body ${got}/${req.size}`);
      } catch (e) {
        unexpectedCount++;
        if (unexpected.length < 10) unexpected.push(`${req.kind} ${req.url.slice(0, 60)}: ${status || ''} ${String(e).slice(0, 120)}`);
        byStatus[status ? String(status) : 'error'] = (byStatus[status ? String(status) : 'error'] ?? 0) + 1;
        continue;
      }
      byStatus[String(status)] = (byStatus[String(status)] ?? 0) + 1;
      if (status !== req.expect) {
        unexpectedCount++;
        if (unexpected.length < 10) unexpected.push(`${req.kind} ${req.url.slice(0, 60)}: ${status}, expected ${req.expect}`);
        continue;
      }
      bytes += got;
      lat[req.kind].push(performance.now() - started);
    }
  }

  await Promise.all(Array.from({ length: o.clients }, client));
  const elapsed = (Date.now() - t0) / 1000;
  clearInterval(sampler);
  agent.destroy();

  // Back to baseline: files (store paths, SQLite) at once; the edge's idle keep-alive sockets to the
  // origin close on their own after a while (workerd's pool), so wait for them only when asked.
  let fdsAfter = openFds(pid);
  const settled = () => files(fdsAfter) <= before.files && (!o.settleSockets || fdsAfter.length <= before.fds + 5);
  for (let i = 0; i < 200 && !settled(); i++) {
    await sleep(100);
    fdsAfter = openFds(pid);
  }
  const all = Object.values(lat).flat().sort((a, b) => a - b);
  const requests = Object.values(byStatus).reduce((a, b) => a + b, 0);
  const byKind = Object.fromEntries(
    Object.entries(lat).map(([k, l]) => {
      const s = [...l].sort((a, b) => a - b);
      return [k, { count: s.length, p50: percentile(s, 50), p90: percentile(s, 90), p99: percentile(s, 99), max: percentile(s, 100) }];
    }),
  );
  return {
    clients: o.clients,
    seconds: Math.round(elapsed * 10) / 10,
    requests,
    rps: Math.round(requests / elapsed),
    bytes,
    byStatus,
    byKind,
    latency: { p50: percentile(all, 50), p90: percentile(all, 90), p99: percentile(all, 99), max: percentile(all, 100) },
    unexpected: { count: unexpectedCount, examples: unexpected },
    samples,
    origin: {
      fdsBefore: before.fds,
      fdsPeak: Math.max(before.fds, ...samples.map((s) => s.originFds)),
      fdsAfter: fdsAfter.length,
      filesBefore: before.files,
      filesAfter: files(fdsAfter),
      socketsAfter: fdsAfter.length - files(fdsAfter),
      rssBeforeMiB: Math.round(before.rss),
      rssPeakMiB: Math.max(Math.round(before.rss), ...samples.map((s) => s.originRssMiB)),
      rssAfterMiB: Math.round(rssKiB(pid) / 1024),
      sqliteBefore: before.sqlite,
      sqliteAfter: fdsAfter.filter((f) => /db\.sqlite/.test(f)).length,
    },
  };
}

const fmtEdge = (e: Record<string, number>) => Object.entries(e).map(([k, v]) => `${k} ${v}`).join(' + ') + ' MiB';

export function formatReport(r: SoakReport): string {
  const lines = [
    `soak: ${r.clients} clients for ${r.seconds} s through wrangler dev → ${r.requests} requests (${r.rps}/s), ${(r.bytes / 2 ** 20).toFixed(0)} MiB`,
    `answers: ${Object.entries(r.byStatus).map(([k, v]) => `${v}×${k}`).join(', ')}; unexpected: ${r.unexpected.count}`,
    ...r.unexpected.examples.map((e) => `  ! ${e}`),
    `latency (ms, to the last byte): p50 ${r.latency.p50}  p90 ${r.latency.p90}  p99 ${r.latency.p99}  max ${r.latency.max}`,
    ...Object.entries(r.byKind).map(([k, v]) => `  ${k.padEnd(13)} n=${String(v.count).padEnd(7)} p50 ${v.p50}  p90 ${v.p90}  p99 ${v.p99}  max ${v.max}`),
    `origin fds: ${r.origin.fdsBefore} before, ${r.origin.fdsPeak} peak, ${r.origin.fdsAfter} after (${r.origin.filesBefore} → ${r.origin.filesAfter} files, ${r.origin.socketsAfter} sockets); sqlite handles ${r.origin.sqliteBefore} → ${r.origin.sqliteAfter}`,
    `origin RSS (MiB): ${r.origin.rssBeforeMiB} before, ${r.origin.rssPeakMiB} peak, ${r.origin.rssAfterMiB} after`,
    `over time (s: origin RSS MiB / fds / wrangler dev RSS MiB):`,
    ...r.samples.filter((_, i, a) => a.length <= 12 || i % Math.ceil(a.length / 12) === 0).map((s) => `  ${String(s.t).padStart(5)}: ${s.originRssMiB} / ${s.originFds} / ${fmtEdge(s.edgeRssMiB)}`),
  ];
  return lines.join('\n');
}

/** Did the run hold up: no unexpected answers, descriptors back to baseline, no SQLite handle leaked. */
export function soakProblems(r: SoakReport): string[] {
  const p: string[] = [];
  if (r.unexpected.count) p.push(`${r.unexpected.count} unexpected answers`);
  if (r.origin.filesAfter > r.origin.filesBefore) p.push(`origin file descriptors ${r.origin.filesBefore} → ${r.origin.filesAfter}`);
  // Sockets: at most one per client (the edge's pool to the origin) until they idle out.
  if (r.origin.fdsAfter > r.origin.fdsBefore + r.clients + 5) p.push(`origin descriptors ${r.origin.fdsBefore} → ${r.origin.fdsAfter}`);
  if (r.origin.sqliteAfter !== r.origin.sqliteBefore) p.push(`sqlite handles ${r.origin.sqliteBefore} → ${r.origin.sqliteAfter}`);
  const third = Math.floor(r.samples.length / 3);
  if (third >= 3) {
    const mean = (xs: Sample[]) => xs.reduce((a, s) => a + s.originRssMiB, 0) / xs.length;
    const mid = mean(r.samples.slice(third, 2 * third));
    const last = mean(r.samples.slice(2 * third));
    if (last > mid * 1.25 + 16) p.push(`origin RSS still rising: ${mid.toFixed(0)} → ${last.toFixed(0)} MiB (middle → last third)`);
  }
  return p;
}

/** A chroot store with the fixture closure, built by real Nix, plus NARs of 256 KiB and 4 MiB. */
export function prepareSoakStore(dir: string): { root: string; paths: string[] } {
  const root = join(dir, 'root');
  const { closure } = buildFixtureStore(root);
  const paths = [...closure, addRandomFile(root, dir, 'soak-small.bin', 256 * 1024), addRandomFile(root, dir, 'soak-large.bin', 4 * 1024 * 1024)];
  return { root, paths };
}

async function main() {
  const { values } = parseArgs({ options: { clients: { type: 'string', default: '200' }, seconds: { type: 'string', default: '60' }, json: { type: 'string' }, only: { type: 'string' } } });
  if (values.only !== undefined && !KINDS.includes(values.only as Kind)) throw new Error(`--only: one of ${KINDS.join(', ')}`);
  const clients = Number(values.clients);
  const seconds = Number(values.seconds);
  if (!(Number.isInteger(clients) && clients >= 1 && clients <= 2000)) throw new Error('--clients: 1..2000');
  if (!(seconds > 0 && seconds <= 3600)) throw new Error('--seconds: up to 3600');
  const say = (l: string) => process.stderr.write(`[soak] ${l}\n`);
  const dir = mkdtempSync(join(tmpdir(), 'eris-soak-'));
  let stack: Stack | undefined;
  const cleanup = async () => {
    await stack?.stop();
    rmSync(dir, { recursive: true, force: true });
  };
  process.once('SIGINT', () => void cleanup().then(() => process.exit(130)));
  try {
    say('building the store with Nix …');
    const { root, paths } = prepareSoakStore(dir);
    say('starting eris serve and wrangler dev …');
    stack = await startStack({ dir, root });
    say(`${clients} clients for ${seconds} s`);
    const report = await runSoak(stack, { clients, seconds, paths, say, only: values.only as Kind | undefined, settleSockets: true });
    process.stdout.write(formatReport(report) + '\n');
    if (values.json) writeFileSync(values.json, JSON.stringify(report, null, 2) + '\n');
    const problems = soakProblems(report);
    if (problems.length) {
      process.stdout.write(`FAIL: ${problems.join('; ')}\n`);
      process.exitCode = 1;
    } else process.stdout.write('OK: no unexpected answers; origin descriptors and SQLite handles back to baseline\n');
  } finally {
    await cleanup();
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  main().catch((e) => {
    process.stderr.write(`soak: ${e instanceof Error ? e.message : e}\n`);
    process.exit(1);
  });
}
