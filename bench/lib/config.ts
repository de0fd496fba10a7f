/** Benchmark parameters, all from the environment (see bench/README.md). */
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';

export interface BenchConfig {
  /** Number of small store paths (narinfo load rotates over all of them). */
  smallPaths: number;
  /** Size of the large path whose NAR is downloaded for MB/s. */
  largeMb: number;
  /** Build and stream the huge path for the RSS figure. */
  huge: boolean;
  hugeMb: number;
  /** Synthetic ValidPaths rows added for the DB-size comparison. */
  inflateRows: number;
  /** Length of each measured wrk run. */
  seconds: number;
  /** Length of the warm-up before each measured run. */
  warmupSeconds: number;
  /** wrk threads / connections for the loaded narinfo run. */
  threads: number;
  connections: number;
  /**
   * CPUs wrk is pinned to (`taskset -c`), e.g. "1"; empty: wherever the kernel puts it, on the servers' cores
   * too. The servers are never pinned.
   */
  wrkCpus: string;
  /** Parallel NAR streams. */
  narParallel: number;
  /** `nix copy` runs of the whole closure per target (the median counts), in rounds alternating with the reference. */
  copyRuns: number;
  /** Rounds of the loaded narinfo run, nginx and origin alternating (the medians count for the issue-20 targets). */
  rounds: number;
  /** Origin worker processes (eris serve --workers) for the throughput runs. */
  originWorkers: number;
  /** Record CPU profiles of the origin under narinfo and NAR load. */
  profile: boolean;
  /** How long to wait for other work on the machine to calm down before each target. */
  quietWaitSeconds: number;
  /** Skip the wrangler dev target (e.g. when wrangler cannot start). */
  skipWorker: boolean;
  /** Send no token to the Worker; it runs with ALLOW_ANONYMOUS=true. */
  anonymous: boolean;
  /** Where built fixtures are kept between runs. */
  cacheDir: string;
  /** Keep the per-run temp dir (logs, configs) instead of deleting it. */
  keep: boolean;
  /** Where results go; bench/results by default. */
  resultsDir: string;
}

export class BenchConfigError extends Error {
  override name = 'BenchConfigError';
}

function int(env: NodeJS.ProcessEnv, name: string, fallback: number, min: number, max: number): number {
  const v = env[name];
  if (v === undefined || v === '') return fallback;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min || n > max) throw new BenchConfigError(`${name} must be a whole number from ${min} to ${max}, got ${JSON.stringify(v)}`);
  return n;
}

function flag(env: NodeJS.ProcessEnv, name: string): boolean {
  const v = (env[name] ?? '').toLowerCase();
  if (v === '' || v === '0' || v === 'false' || v === 'no') return false;
  if (v === '1' || v === 'true' || v === 'yes') return true;
  throw new BenchConfigError(`${name} must be 1 or 0, got ${JSON.stringify(env[name])}`);
}

/** A `taskset -c` CPU list ("1", "0,2", "2-3"), or "" when unset. */
function cpuList(env: NodeJS.ProcessEnv, name: string): string {
  const v = env[name] ?? '';
  if (v !== '' && !/^\d+(-\d+)?(,\d+(-\d+)?)*$/.test(v)) throw new BenchConfigError(`${name} must be a CPU list such as 1 or 0,2 or 2-3, got ${JSON.stringify(v)}`);
  return v;
}

export function benchConfig(env: NodeJS.ProcessEnv): BenchConfig {
  const threads = int(env, 'BENCH_THREADS', 2, 1, 64);
  const connections = int(env, 'BENCH_CONNECTIONS', 32, 1, 4096);
  if (connections < threads) throw new BenchConfigError('BENCH_CONNECTIONS must be at least BENCH_THREADS');
  return {
    wrkCpus: cpuList(env, 'BENCH_WRK_CPUS'),
    smallPaths: int(env, 'BENCH_PATHS', 300, 10, 5000),
    largeMb: int(env, 'BENCH_LARGE_MB', 256, 1, 65536),
    huge: flag(env, 'BENCH_HUGE'),
    hugeMb: int(env, 'BENCH_HUGE_MB', 4096, 1, 65536),
    inflateRows: int(env, 'BENCH_DB_ROWS', 100_000, 0, 10_000_000),
    seconds: int(env, 'BENCH_SECONDS', 10, 1, 600),
    warmupSeconds: int(env, 'BENCH_WARMUP_SECONDS', 2, 0, 60),
    threads,
    connections,
    narParallel: int(env, 'BENCH_NAR_PARALLEL', 8, 2, 256),
    copyRuns: int(env, 'BENCH_COPY_RUNS', 5, 0, 50),
    rounds: int(env, 'BENCH_ROUNDS', 5, 1, 50),
    originWorkers: int(env, 'BENCH_ORIGIN_WORKERS', cpus().length, 1, 64),
    profile: flag(env, 'BENCH_PROFILE'),
    quietWaitSeconds: int(env, 'BENCH_QUIET_WAIT', 30, 0, 3600),
    skipWorker: flag(env, 'BENCH_SKIP_WORKER'),
    anonymous: flag(env, 'BENCH_ANONYMOUS'),
    cacheDir: env.BENCH_CACHE_DIR || join(tmpdir(), 'eris-bench-cache'),
    keep: flag(env, 'BENCH_KEEP'),
    resultsDir: env.BENCH_RESULTS_DIR || new URL('../results/', import.meta.url).pathname,
  };
}
