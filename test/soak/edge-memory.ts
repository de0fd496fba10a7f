/**
 * workerd's RSS growth per request under `wrangler dev`: the eris Worker against the do-nothing
 * forwarding Worker (bench/lib/passthrough-worker.js), both in front of the same origin, the same
 * authenticated narinfo request at the same concurrency. Prints RSS after a warm-up and after every
 * `--step` requests, and the growth per request between the first and the last sample.
 *
 *   npx node --disable-warning=ExperimentalWarning test/soak/edge-memory.ts --store-root DIR --hash HASH [--requests 40000] [--step 10000] [--concurrency 16]
 */
import { copyFileSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Agent, request } from 'node:http';
import { generateKeyPair } from '../../shared/signing.ts';
import { addToken, PROJECT_DIR, WRANGLER, wranglerEnv } from '../../origin/tokens/cli.ts';
import { freePort, startEdge, startOriginCli, startProcess, waitFor, type Proc } from '../helpers/processes.ts';

const { values: a } = parseArgs({ options: { 'store-root': { type: 'string' }, hash: { type: 'string' }, requests: { type: 'string', default: '40000' }, step: { type: 'string', default: '10000' }, concurrency: { type: 'string', default: '16' }, only: { type: 'string' } } });
const SECRET = 'edge-memory-secret-0123456789';
const dir = mkdtempSync(join(tmpdir(), 'eris-edge-memory-'));
const kp = generateKeyPair('edge-memory-1');
writeFileSync(join(dir, 'key.sec'), kp.secret);
const origin = await startOriginCli({ root: a['store-root']!, keyFiles: [join(dir, 'key.sec')], edgeSecret: SECRET });

function workerdRssKiB(pgid: number): number {
  let kib = 0;
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[2]) !== pgid || !stat.includes('(workerd)')) continue;
      kib += Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${d}/status`, 'utf8'))![1]);
    } catch {}
  }
  return kib;
}

async function load(url: string, headers: Record<string, string>, n: number, concurrency: number): Promise<Record<number, number>> {
  const agent = new Agent({ keepAlive: true, maxSockets: concurrency });
  const statuses: Record<number, number> = {};
  let left = n;
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (left-- > 0) {
      const status = await new Promise<number>((resolve, reject) => {
        const req = request(url, { agent, headers }, (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode!));
        });
        req.on('error', reject);
        req.end();
      });
      statuses[status] = (statuses[status] ?? 0) + 1;
    }
  }));
  agent.destroy();
  return statuses;
}

async function measure(name: string, edge: Proc & { url: string }, headers: Record<string, string>) {
  const pgid = edge.child.pid!;
  const url = `${edge.url}/${a.hash}.narinfo`;
  const concurrency = Number(a.concurrency);
  await load(url, headers, 2000, concurrency);
  const samples: { requests: number; rssKiB: number }[] = [{ requests: 0, rssKiB: workerdRssKiB(pgid) }];
  const statuses: Record<number, number> = {};
  const t0 = performance.now();
  for (let done = 0; done < Number(a.requests); done += Number(a.step)) {
    for (const [k, v] of Object.entries(await load(url, headers, Number(a.step), concurrency))) statuses[Number(k)] = (statuses[Number(k)] ?? 0) + v;
    samples.push({ requests: done + Number(a.step), rssKiB: workerdRssKiB(pgid) });
  }
  const seconds = (performance.now() - t0) / 1000;
  const first = samples[0]!;
  const last = samples.at(-1)!;
  console.log(JSON.stringify({ worker: name, statuses, rps: Math.round(last.requests / seconds), samples: samples.map((s) => `${s.requests}:${Math.round(s.rssKiB / 1024)}MiB`).join(' '), bytesPerRequest: Math.round(((last.rssKiB - first.rssKiB) * 1024) / last.requests) }));
}

try {
  if (a.only !== 'passthrough') {
    const edge = await startEdge({ originUrl: origin.url, edgeSecret: SECRET });
    const token = await addToken({ mode: 'local', persistTo: edge.persistTo }, 'soak', { scopes: ['read'] });
    await measure('eris', edge, { Authorization: `Bearer ${token}` });
    await edge.stop();
  }
  if (a.only !== 'eris') {
    const pdir = join(dir, 'passthrough');
    (await import('node:fs')).mkdirSync(pdir);
    copyFileSync(join(PROJECT_DIR, 'bench/lib/passthrough-worker.js'), join(pdir, 'index.js'));
    writeFileSync(join(pdir, 'wrangler.toml'), 'name = "eris-passthrough"\nmain = "index.js"\ncompatibility_date = "2026-08-01"\n');
    const port = await freePort();
    const proc = startProcess(WRANGLER, ['dev', '--local', '--ip', '127.0.0.1', '--port', String(port), '--inspector-port', '0', '--show-interactive-dev-session=false',
      '--var', `UPSTREAM:${origin.url}`, '--var', `EDGE_SECRET:${SECRET}`], { env: wranglerEnv(), cwd: pdir });
    const url = `http://127.0.0.1:${port}`;
    await waitFor(`${url}/nix-cache-info`, proc, 120_000);
    await measure('passthrough', { ...proc, url }, {});
    await proc.stop();
  }
} finally {
  await origin.stop();
}
