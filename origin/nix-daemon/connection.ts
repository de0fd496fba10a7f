/**
 * One conversation with a Nix daemon over the worker protocol: the handshake,
 * then operations one at a time (each answered by log messages and then a
 * result or an error). A daemon error (a hash mismatch, a missing signature)
 * fails that operation and leaves the connection usable; anything else (the
 * daemon gone, bytes we cannot parse) breaks the connection for good.
 *
 * Temporary GC roots taken through a connection (AddTempRoot, and the ones the
 * daemon takes itself while adding a path) last until the connection closes.
 */
import { once } from 'node:events';
import type { Readable } from 'node:stream';
import { StreamReader } from './reader.ts';
import type { Transport } from './transport.ts';
import {
  CLIENT_VERSION, MinMinor, Op, WORKER_MAGIC_1, WORKER_MAGIC_2, WireWriter, formatProtocol, frameHeader, plainMessage,
  protocolMajor, protocolMinor, frames, framedLength, readBool, readPathInfo, readStderr, readString, readStrings, readU64, writePathInfo,
  writeSetOptions, type DaemonPathInfo,
} from './wire.ts';

/** The daemon refused an operation; the connection is fine. `message` is Nix's, without colours. */
export class DaemonError extends Error {
  override name = 'DaemonError';
  readonly traces: string[];
  /** `cause`: the client's own reason when it cut a NAR short (its source failed). */
  constructor(message: string, traces: string[] = [], options?: { cause?: Error }) {
    super(message, options);
    this.traces = traces;
  }
}

/** The connection is unusable (daemon gone, protocol out of step). */
export class DaemonConnectionError extends Error {
  override name = 'DaemonConnectionError';
}

export interface AddOptions {
  /** Skip the signature check: honoured only when the daemon trusts this user (a trusted-user, or `--stdio`). */
  dontCheckSigs?: boolean;
  repair?: boolean;
}

/** A path to add: its metadata and its NAR (uncompressed), read once. */
export interface NarToAdd {
  info: DaemonPathInfo;
  nar: () => AsyncIterable<Buffer> | Readable;
}

export interface DaemonConnection {
  /** The negotiated protocol version (e.g. 0x122 for 1.34). */
  readonly protocol: number;
  /** The daemon's Nix version, when it says (protocol ≥ 1.33). */
  readonly daemonNixVersion: string | undefined;
  readonly describe: string;
  /** True once the connection cannot be used any more. */
  readonly broken: boolean;
  /** True when the daemon offers AddMultipleToStore. */
  readonly canAddMultiple: boolean;
  isValidPath(path: string): Promise<boolean>;
  queryValidPaths(paths: string[]): Promise<string[]>;
  queryPathInfo(path: string): Promise<DaemonPathInfo | undefined>;
  /** Keeps `path` from the garbage collector for as long as this connection is open. */
  addTempRoot(path: string): Promise<void>;
  /** Adds one path; valid only once complete and checked (NarHash, NarSize, signature unless skipped). */
  addToStoreNar(item: NarToAdd, options?: AddOptions): Promise<void>;
  /** Adds several paths in one operation (references before referrers); on an error, the ones before it may be valid. */
  addMultipleToStore(items: NarToAdd[], options?: AddOptions): Promise<void>;
  close(): void;
}

export interface ConnectOptions {
  /** Settings sent with SetOptions (only a trusted client's are applied; others make the daemon warn). */
  overrides?: Record<string, string>;
  /** Log lines from the daemon (STDERR_NEXT). */
  onLog?: (line: string) => void;
  /** Bytes per frame when streaming NARs. */
  frameBytes?: number;
}

/**
 * Nix 2.8's daemon allocates (and zero-fills) a fresh buffer for every frame it reads: frames past
 * malloc's mmap threshold (128 KiB) cost it a page fault per 4 KiB. 32 KiB frames (its own read
 * buffer's size) took a 256 MiB NAR in about two thirds of the time 256 KiB frames did.
 */
const FRAME_BYTES = 32 * 1024;

export async function openDaemonConnection(t: Transport, o: ConnectOptions = {}): Promise<DaemonConnection> {
  const gone = () => new DaemonConnectionError(`${t.describe} closed the connection${t.lastWords() ? `: ${t.lastWords()}` : ''}`);
  const reader = new StreamReader(t.input, gone);
  let broken: Error | undefined;
  let closedPromise: Promise<never> | undefined;
  const closed = () => (closedPromise ??= new Promise<never>((_, reject) => {
    const fail = () => reject(broken ?? gone());
    t.output.once('close', fail);
    t.input.once('close', fail);
    t.input.once('end', fail);
  }));
  closed().catch(() => {});

  async function send(buf: Buffer): Promise<void> {
    if (broken) throw broken;
    if (!t.output.write(buf)) await Promise.race([once(t.output, 'drain'), closed()]);
  }

  let protocol = 0;
  let daemonNixVersion: string | undefined;
  const minor = () => protocolMinor(protocol);

  /** Reads log messages until the operation's end; a daemon error is thrown as DaemonError. */
  async function processStderr(): Promise<void> {
    for (;;) {
      const m = await readStderr(reader, minor());
      switch (m.type) {
        case 'last':
          return;
        case 'error':
          throw new DaemonError(plainMessage(m.message), m.traces.map(plainMessage));
        case 'log':
          o.onLog?.(plainMessage(m.text));
          break;
        case 'read':
        case 'write':
          throw new DaemonConnectionError(`protocol error: ${t.describe} asked for a data ${m.type} this client never requests`);
        default:
          break; // activities and results: progress we do not show
      }
    }
  }

  let queue: Promise<unknown> = Promise.resolve();
  function run<T>(fn: () => Promise<T>): Promise<T> {
    const p = queue.then(async () => {
      if (broken) throw broken;
      try {
        return await fn();
      } catch (e) {
        if (!(e instanceof DaemonError)) {
          broken = e instanceof DaemonConnectionError ? e : new DaemonConnectionError(`${t.describe}: ${(e as Error).message}`);
          t.close();
          throw broken;
        }
        throw e;
      }
    });
    queue = p.catch(() => {});
    return p;
  }

  /** Writes `buf`; resolves once the socket took all of it (its callback), so the caller may reuse it. */
  function sendAll(buf: Buffer): Promise<void> {
    if (broken) return Promise.reject(broken);
    const written = new Promise<void>((resolve, reject) => t.output.write(buf, (e) => (e ? reject(broken ?? gone()) : resolve())));
    return Promise.race([written, closed()]);
  }

  /**
   * Two buffers the frames of a NAR's chunks are written into in turn, for the connection's life: a chunk is
   * framed into the one the socket has taken all of. A fresh buffer per chunk (and the GC and first page
   * touches of 256 MiB of them for a 256 MiB NAR) was a third of the origin's CPU in a large streamed import.
   */
  const scratch: { buf?: Buffer; taken: Promise<void> }[] = [{ taken: Promise.resolve() }, { taken: Promise.resolve() }];
  let turn = 0;

  /** Streams one NAR as frames; stops early (and ends the frames) if the source fails. */
  async function sendFrames(source: AsyncIterable<Buffer> | Readable, frameBytes: number): Promise<Error | undefined> {
    try {
      for await (const chunk of source as AsyncIterable<Buffer>) {
        if (!chunk.length) continue;
        const s = scratch[turn]!;
        turn ^= 1;
        await s.taken;
        const need = framedLength(chunk.length, frameBytes);
        if (!s.buf || s.buf.length < need) s.buf = Buffer.allocUnsafeSlow(need);
        // Framed (copied) before the source's next chunk is asked for: a source may reuse its buffer.
        s.taken = sendAll(frames(chunk, frameBytes, s.buf));
        s.taken.catch(() => {});
      }
      await Promise.all(scratch.map((s) => s.taken));
      return undefined;
    } catch (e) {
      if (broken) throw broken;
      return e as Error;
    }
  }

  const frameBytes = o.frameBytes ?? FRAME_BYTES;

  // The handshake.
  await run(async () => {
    await send(new WireWriter().u64(WORKER_MAGIC_1).toBuffer());
    const magic = await readU64(reader);
    if (magic !== WORKER_MAGIC_2) throw new DaemonConnectionError(`${t.describe} does not speak the Nix worker protocol`);
    const theirs = await readU64(reader);
    if (protocolMajor(theirs) !== protocolMajor(CLIENT_VERSION)) throw new DaemonConnectionError(`${t.describe} speaks protocol ${formatProtocol(theirs)}, not 1.x`);
    if (protocolMinor(theirs) < MinMinor.framedNar) throw new DaemonConnectionError(`${t.describe} speaks protocol ${formatProtocol(theirs)}; eris needs 1.${MinMinor.framedNar} or later (Nix 2.4+)`);
    protocol = Math.min(theirs, CLIENT_VERSION);
    await send(new WireWriter().u64(CLIENT_VERSION).u64(0 /* obsolete CPU affinity */).u64(0 /* obsolete reserveSpace */).toBuffer());
    if (minor() >= MinMinor.daemonVersion) daemonNixVersion = await readString(reader);
    await processStderr();
    await send(writeSetOptions(new WireWriter(), o.overrides ?? {}).toBuffer());
    await processStderr();
  }).catch((e) => {
    t.close();
    throw e instanceof DaemonError ? new DaemonConnectionError(`${t.describe} refused the connection: ${e.message}`) : e;
  });

  return {
    get protocol() {
      return protocol;
    },
    get daemonNixVersion() {
      return daemonNixVersion;
    },
    describe: t.describe,
    get broken() {
      return broken !== undefined;
    },
    get canAddMultiple() {
      return minor() >= MinMinor.addMultiple;
    },

    isValidPath: (path) => run(async () => {
      await send(new WireWriter().u64(Op.IsValidPath).string(path).toBuffer());
      await processStderr();
      return readBool(reader);
    }),

    queryValidPaths: (paths) => run(async () => {
      const w = new WireWriter().u64(Op.QueryValidPaths).strings([...new Set(paths)].sort());
      if (minor() >= MinMinor.queryValidPathsSubstitute) w.bool(false);
      await send(w.toBuffer());
      await processStderr();
      return readStrings(reader);
    }),

    queryPathInfo: (path) => run(async () => {
      await send(new WireWriter().u64(Op.QueryPathInfo).string(path).toBuffer());
      try {
        await processStderr();
      } catch (e) {
        if (e instanceof DaemonError && /is not valid/.test(e.message)) return undefined;
        throw e;
      }
      if (!(await readBool(reader))) return undefined;
      return readPathInfo(reader, path);
    }),

    addTempRoot: (path) => run(async () => {
      await send(new WireWriter().u64(Op.AddTempRoot).string(path).toBuffer());
      await processStderr();
      await readU64(reader);
    }),

    addToStoreNar: (item, options = {}) => run(async () => {
      const w = new WireWriter().u64(Op.AddToStoreNar);
      writePathInfo(w, item.info, true).bool(options.repair ?? false).bool(options.dontCheckSigs ?? false);
      await send(w.toBuffer());
      const failed = await sendFrames(item.nar(), frameBytes);
      await send(frameHeader(0));
      await processStderr().catch((e) => {
        throw failed && e instanceof DaemonError ? new DaemonError(`${failed.message} (the daemon: ${e.message})`, [], { cause: failed }) : e;
      });
      // We cut the NAR short (the daemon then fails on it, unless what it got was already complete): say why.
      if (failed) throw new DaemonError(failed.message, [], { cause: failed });
    }),

    addMultipleToStore: (items, options = {}) => run(async () => {
      if (minor() < MinMinor.addMultiple) throw new DaemonError(`${t.describe} has no AddMultipleToStore (protocol ${formatProtocol(protocol)})`);
      await send(new WireWriter().u64(Op.AddMultipleToStore).bool(options.repair ?? false).bool(options.dontCheckSigs ?? false).toBuffer());
      const head = (b: Buffer) => send(Buffer.concat([frameHeader(b.length), b]));
      await head(new WireWriter().u64(items.length).toBuffer());
      let failed: Error | undefined;
      for (const item of items) {
        await head(writePathInfo(new WireWriter(), item.info, true).toBuffer());
        failed = await sendFrames(item.nar(), frameBytes);
        if (failed) break;
      }
      await send(frameHeader(0));
      await processStderr().catch((e) => {
        throw failed && e instanceof DaemonError ? new DaemonError(`${failed.message} (the daemon: ${e.message})`, [], { cause: failed }) : e;
      });
      if (failed) throw new DaemonError(failed.message, [], { cause: failed });
    }),

    close: () => {
      broken ??= new DaemonConnectionError(`${t.describe}: connection closed`);
      t.close();
    },
  };
}
