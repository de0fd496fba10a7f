/**
 * `workers = N`: N origin processes share the listening socket (node:cluster,
 * the kernel spreads connections), so narinfo signing and NAR streaming use
 * every core. The primary checks the configuration before forking, restarts
 * a worker that dies, and answers /metrics for all workers together.
 */
import cluster, { type Worker } from 'node:cluster';
import type { OriginConfig } from '../config/index.ts';
import { startOrigin } from './start.ts';
import { checkStartup } from './compose.ts';
import { Metrics, type MetricsSnapshot } from './metrics.ts';
import type { Logger } from './log.ts';
import { createClusterSlots, createSlotServer } from '../compression/cluster-slots.ts';

type Msg =
  | { type: 'eris:metrics?'; id: number }
  | { type: 'eris:collect'; id: number }
  | { type: 'eris:snapshot'; id: number; snapshot: MetricsSnapshot }
  | { type: 'eris:metrics'; id: number; snapshots: MetricsSnapshot[] };

export async function serveCluster(config: OriginConfig, log: Logger): Promise<void> {
  if (cluster.isPrimary) return primary(config, log);
  return worker(config, log);
}

async function primary(config: OriginConfig, log: Logger) {
  // Fail once, here, with one line — not N times in the workers.
  checkStartup(config);
  cluster.schedulingPolicy = cluster.SCHED_NONE;
  let stopping = false;
  let restarts = 0;
  const fork = () => cluster.fork();
  for (let i = 0; i < config.workers; i++) fork();
  // The compression cap for all workers together.
  const slots = createSlotServer(config.compressionMax, config.compressionQueue);

  // /metrics in one worker: ask every worker for its counters, hand them all back to the asker.
  const pending = new Map<number, { from: Worker; reqId: number; want: number; got: MetricsSnapshot[]; timer: NodeJS.Timeout }>();
  let nextId = 1;
  const finish = (id: number) => {
    const p = pending.get(id);
    if (!p) return;
    clearTimeout(p.timer);
    pending.delete(id);
    if (p.from.isConnected()) p.from.send({ type: 'eris:metrics', id: p.reqId, snapshots: p.got } satisfies Msg);
  };
  cluster.on('message', (from, msg: Msg) => {
    if (slots.onMessage(from, msg)) return;
    if (msg?.type === 'eris:metrics?') {
      const id = nextId++;
      const workers = Object.values(cluster.workers ?? {}).filter((w): w is Worker => !!w && w.isConnected());
      pending.set(id, { from, reqId: msg.id, want: workers.length, got: [], timer: setTimeout(() => finish(id), 1000) });
      for (const w of workers) w.send({ type: 'eris:collect', id } satisfies Msg);
    } else if (msg?.type === 'eris:snapshot') {
      const p = pending.get(msg.id);
      if (!p) return;
      p.got.push(msg.snapshot);
      if (p.got.length >= p.want) finish(msg.id);
    }
  });
  cluster.on('exit', (w, code, signal) => {
    slots.exited(w);
    if (stopping) return;
    restarts++;
    log.error({ msg: 'origin worker died; starting another', pid: w.process.pid, code, signal, restarts });
    setTimeout(fork, Math.min(5000, 100 * restarts));
  });
  const stop = () => {
    stopping = true;
    for (const w of Object.values(cluster.workers ?? {})) w?.process.kill('SIGTERM');
    setTimeout(() => process.exit(0), 5000).unref();
    cluster.on('exit', () => {
      if (Object.values(cluster.workers ?? {}).filter(Boolean).length === 0) process.exit(0);
    });
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  log.info({ msg: 'eris origin cluster started', workers: config.workers });
}

async function worker(config: OriginConfig, log: Logger) {
  let own: Metrics | undefined; // set once the origin has started
  let nextId = 1;
  const waiting = new Map<number, (s: MetricsSnapshot[]) => void>();
  process.on('message', (msg: Msg) => {
    if (msg?.type === 'eris:collect' && own) process.send!({ type: 'eris:snapshot', id: msg.id, snapshot: own.snapshot() } satisfies Msg);
    else if (msg?.type === 'eris:metrics') {
      waiting.get(msg.id)?.(msg.snapshots);
      waiting.delete(msg.id);
    }
  });
  const origin = await startOrigin(config, log, {
    slots: createClusterSlots(),
    clusterMetrics: (mine) => {
      const id = nextId++;
      return new Promise<Metrics>((resolve) => {
        const timer = setTimeout(() => {
          waiting.delete(id);
          resolve(mine); // the primary did not answer: at least this worker's counters
        }, 2000);
        waiting.set(id, (snapshots) => {
          clearTimeout(timer);
          const all = new Metrics();
          all.gauges = mine.gauges;
          all.levels = mine.levels;
          for (const s of snapshots) all.absorb(s);
          resolve(all);
        });
        process.send!({ type: 'eris:metrics?', id } satisfies Msg);
      });
    },
  });
  own = origin.metrics;
  process.once('SIGTERM', () => void origin.close().then(() => process.exit(0)));
  process.once('SIGINT', () => {}); // the primary decides
}
