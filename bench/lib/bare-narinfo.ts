/**
 * A reference for bench/narinfo.ts (BENCH_NARINFO_BARE=1): plain node:http answering the fixture's
 * narinfos from memory, with the origin's edge-secret check and the headers and write its fast path
 * uses (routes/narinfo-fast.ts), in as many cluster workers as the origin. No store, no metrics, no
 * usage, no routing: what Node's HTTP server costs per narinfo on this machine, so that a run shows
 * how much of the origin's cost is Node's and how much is eris's.
 *
 *   node bench/lib/bare-narinfo.ts STATIC_DIR HOST:PORT WORKERS   (ERIS_EDGE_SECRET in the environment)
 */
import cluster from 'node:cluster';
import { createServer } from 'node:http';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CONTENT_TYPE, EDGE_SECRET_HEADER } from '../../shared/contract.ts';
import { parseBind } from '../../origin/config/index.ts';
import { sentHeaders } from '../../origin/server/respond.ts';
import { sameSecret } from '../../origin/server/middleware/edge-auth/index.ts';

const [staticDir, bind, workersArg] = process.argv.slice(2);
const secret = process.env.ERIS_EDGE_SECRET ?? '';
if (!staticDir || !bind || !secret) throw new Error('usage: ERIS_EDGE_SECRET=… node bench/lib/bare-narinfo.ts STATIC_DIR HOST:PORT [WORKERS]');
const workers = Number(workersArg ?? 1);

if (cluster.isPrimary && workers > 1) {
  for (let i = 0; i < workers; i++) cluster.fork();
} else {
  const answers = new Map<string, { text: string; headers: string[] }>();
  for (const f of readdirSync(staticDir)) {
    if (!f.endsWith('.narinfo')) continue;
    const text = readFileSync(join(staticDir, f), 'latin1');
    answers.set(`/${f}`, { text, headers: sentHeaders(CONTENT_TYPE.narinfo, text.length) });
  }
  const { host, port } = parseBind('bind', bind);
  const server = createServer((req, res) => {
    if (req.url === '/health') return void res.end('ok\n');
    const given = req.headers[EDGE_SECRET_HEADER];
    const a = answers.get(req.url ?? '');
    if (typeof given !== 'string' || !sameSecret(given, secret) || !a) {
      res.writeHead(404);
      return void res.end();
    }
    res.writeHead(200, a.headers);
    res.end(a.text, 'latin1');
  });
  server.keepAliveTimeout = 65_000; // as origin/server/listen.ts
  server.listen(port, host);
}
