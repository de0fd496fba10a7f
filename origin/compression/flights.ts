/**
 * Single flight per compressed NAR. The first request for a NAR that is not in
 * the on-disk cache starts one compression (once the cap in slots.ts gives it a
 * place); it writes into a spool file — the cache's temporary file when there is
 * a cache, an unlinked file otherwise — and every request for the same NAR,
 * the first included, reads that file behind the writer. All of them get the
 * same bytes; if the compression fails, every one of them fails (the transport
 * breaks the connection), never a clean short body. When the last reader goes
 * away the compression is stopped.
 *
 * Reading behind the writer rather than waiting for the file, by measurement
 * (test/robustness/compression-bounded.test.ts, 16 clients, a 3 MiB NAR, xz -3, the
 * shared 2-core machine): every follower had its first byte after 0.14–0.27 s
 * and all were done after 4.6–5.7 s; waiting would give the same end but the
 * first byte only when the compression ends (~4.5 s here, minutes for a large
 * NAR with xz — longer than a proxy waits for a silent origin).
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { open, rm, unlink, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { encodeNix32 } from '../../shared/nix32.ts';
import { createCompressor } from './compress.ts';
import type { NarCache } from './nar-cache.ts';
import type { PathInfo, Store } from '../store/store.ts';
import { CHUNK, takeChunk } from '../store/buffer-pool.ts';
import type { Logger } from '../server/log.ts';
import type { Metrics } from '../server/metrics.ts';
import type { Slots } from './slots.ts';

export interface CompressionsOptions {
  store: Pick<Store, 'nar'>;
  slots: Slots;
  method: 'zstd' | 'xz';
  level: number;
  narCache?: NarCache;
  /** Where spool files go when there is no cache; they are unlinked as soon as they are open. */
  spoolDir: string;
  log: Logger;
  /** Counts compressions started. */
  metrics?: Pick<Metrics, 'compressionsStarted'>;
}

export interface Follower {
  /** The compressed NAR, from the first byte, as it is produced. Throws if the compression fails. */
  chunks(): AsyncGenerator<Buffer>;
  /** Stops following (idempotent); the last one to leave stops the compression. */
  leave(): void;
}

export interface Compressions {
  /** Follows the compression of `key` (starting one if none runs). Rejects with CompressionRefusedError when the queue is full. */
  join(key: string, info: PathInfo): Promise<Follower>;
  /** Compressions running in this process / waiting for a place; compressions started so far. */
  readonly running: number;
  readonly queued: number;
  readonly started: number;
}

type State = 'queued' | 'running' | 'done' | 'failed';

/** What the flights of one createCompressions share: its options, the flights by key, the counters. */
interface Shared {
  o: CompressionsOptions;
  flights: Map<string, Flight>;
  counts: { running: number; queued: number; started: number };
}

export function createCompressions(o: CompressionsOptions): Compressions {
  if (!o.narCache) mkdirSync(o.spoolDir, { recursive: true });
  const shared: Shared = { o, flights: new Map(), counts: { running: 0, queued: 0, started: 0 } };
  return {
    get running() {
      return shared.counts.running;
    },
    get queued() {
      return shared.counts.queued;
    },
    get started() {
      return shared.counts.started;
    },
    join: (key, info) => joinFlight(shared, key, info),
  };
}

/** Follows the flight of `key`, starting one if none is under way; resolves once it has a place in the queue. */
async function joinFlight(shared: Shared, key: string, info: PathInfo): Promise<Follower> {
  const { flights } = shared;
  let flight = flights.get(key);
  if (!flight) {
    flight = new Flight(shared, key, info);
    flights.set(key, flight);
    const started = flight;
    started.admitted.catch(() => {
      if (flights.get(key) === started) flights.delete(key);
    });
  }
  const f = flight.follower();
  try {
    await flight.admitted;
  } catch (e) {
    f.leave();
    throw e;
  }
  return f;
}

/**
 * The spool file a compression writes (`out`) and its readers read (`read`): the cache's
 * temporary file, or an unlinked file in spoolDir without a cache.
 */
async function openSpool(o: CompressionsOptions, key: string): Promise<{ path: string; out: FileHandle; read: FileHandle }> {
  const path = o.narCache ? o.narCache.spoolPath(key) : join(o.spoolDir, `${key}.${process.pid}.${randomBytes(6).toString('hex')}`);
  const out = await open(path, 'wx', 0o600);
  let read: FileHandle;
  try {
    read = await open(path, 'r');
  } catch (e) {
    await out.close();
    await rm(path, { force: true });
    throw e;
  }
  if (!o.narCache) {
    try {
      await unlink(path);
    } catch (e) {
      await Promise.all([out.close(), read.close()]).catch(() => {});
      throw e;
    }
  }
  return { path, out, read };
}

/** One compression of one NAR and the requests reading it. */
class Flight {
  state: State = 'queued';
  error: Error | undefined;
  written = 0;
  readers = 0;
  fd: FileHandle | undefined;
  readonly ready: Promise<void>;
  readonly admitted: Promise<void>;
  private wakers: (() => void)[] = [];
  private readonly abort = new AbortController();
  private readonly shared: Shared;
  private readonly key: string;
  private readonly info: PathInfo;
  private readonly slot;

  constructor(shared: Shared, key: string, info: PathInfo) {
    this.shared = shared;
    this.key = key;
    this.info = info;
    this.slot = shared.o.slots.request(key);
    this.admitted = this.slot.admitted;
    this.ready = this.run();
    this.ready.catch(() => {});
  }

  private wake() {
    const w = this.wakers;
    this.wakers = [];
    for (const f of w) f();
  }

  changed(): Promise<void> {
    return new Promise((r) => this.wakers.push(r));
  }

  /** Waits for a place under the cap, then serves the NAR from the cache (another worker made it) or compresses it. */
  private async run(): Promise<void> {
    const { o, counts } = this.shared;
    await this.admitted;
    counts.queued++;
    let release: () => void;
    try {
      const aborted = new Promise<never>((_, reject) => this.abort.signal.addEventListener('abort', () => reject(new Error('abandoned')), { once: true }));
      aborted.catch(() => {});
      release = await Promise.race([this.slot.granted, aborted]);
    } finally {
      counts.queued--;
    }
    try {
      // Another worker may have compressed it while this one waited for the key.
      const cached = o.narCache?.get(this.key);
      if (cached) {
        this.fd = await open(cached.path, 'r');
        this.written = cached.fileSize;
        this.finish('done');
        release();
        return;
      }
      await this.compress(release);
    } catch (e) {
      release();
      this.error = e as Error;
      this.finish('failed');
      throw e;
    }
  }

  /** Starts NAR → compressor → spool file; the place is released when it ends, either way. */
  private async compress(release: () => void): Promise<void> {
    const { o, counts } = this.shared;
    const { path, out, read } = await openSpool(o, this.key);
    this.fd = read;
    this.state = 'running';
    counts.running++;
    counts.started++;
    if (o.metrics) o.metrics.compressionsStarted++;
    const hash = createHash('sha256');
    const sink = new Writable({
      write: (chunk: Buffer, _enc, cb) => {
        out.write(chunk, 0, chunk.length, this.written).then(() => {
          hash.update(chunk);
          this.written += chunk.length;
          this.wake();
          cb();
        }, cb);
      },
    });
    pipeline(o.store.nar(this.info), createCompressor(o.method, o.level), sink, { signal: this.abort.signal })
      .then(async () => {
        await out.close();
        if (o.narCache) o.narCache.commit(this.key, path, `sha256:${encodeNix32(hash.digest())}`, this.written);
        this.finish('done');
      })
      .catch(async (err: Error) => {
        await out.close().catch(() => {});
        if (o.narCache) await rm(path, { force: true });
        if (!this.abort.signal.aborted) o.log.error({ msg: 'compression failed', path: this.info.storePath, method: o.method, error: err.message });
        this.error = err;
        this.finish('failed');
      })
      .finally(() => {
        counts.running--;
        release();
      });
  }

  finish(state: 'done' | 'failed') {
    const { flights } = this.shared;
    this.state = state;
    if (flights.get(this.key) === this) flights.delete(this.key);
    this.wake();
    if (this.readers === 0) void this.fd?.close().catch(() => {});
  }

  follower(): Follower {
    this.readers++;
    let left = false;
    const leave = () => {
      if (left) return;
      left = true;
      if (--this.readers > 0) return;
      if (this.state === 'queued' || this.state === 'running') {
        // Nobody wants it any more: give up the place, or stop compressing.
        if (this.shared.flights.get(this.key) === this) this.shared.flights.delete(this.key);
        this.slot.cancel();
        this.abort.abort();
      } else void this.fd?.close().catch(() => {});
    };
    return { leave, chunks: () => readBehind(this, leave) };
  }
}

/** The spool file from its first byte, read behind the writer until the compression is done; leaves at the end. */
async function* readBehind(flight: Flight, leave: () => void): AsyncGenerator<Buffer> {
  try {
    await flight.ready;
    let pos = 0;
    for (;;) {
      if (flight.state === 'failed') throw flight.error ?? new Error('compression failed');
      if (pos < flight.written) {
        const n = Math.min(CHUNK, flight.written - pos);
        const buf = n === CHUNK ? takeChunk() : Buffer.allocUnsafe(n);
        const { bytesRead } = await flight.fd!.read(buf, 0, n, pos);
        if (bytesRead !== n) throw new Error('compressed NAR spool file shrank');
        pos += n;
        yield buf;
      } else if (flight.state === 'done') return;
      else await flight.changed();
    }
  } finally {
    leave();
  }
}
