/**
 * The Nix daemon's worker protocol on the wire (as Nix 2.8 to 2.26 speak it),
 * without any I/O: how values are written, how the daemon's answers and its
 * stderr messages are read from a byte source.
 *
 * Everything is 64-bit little-endian words: a number is one word; a string is
 * its length, its bytes, and zero padding to a multiple of 8; a list is its
 * count and its items. Large data (a NAR) goes "framed": chunks each preceded
 * by their length, ended by a zero-length chunk.
 *
 * After an operation the daemon sends log messages (`STDERR_*`) until
 * `STDERR_LAST` (then the operation's result follows) or `STDERR_ERROR`.
 */

export const WORKER_MAGIC_1 = 0x6e697863; // "cxin"
export const WORKER_MAGIC_2 = 0x6478696f; // "oixd"

/** The protocol version this client speaks: 1.34, Nix 2.8's. Newer daemons talk down to it. */
export const CLIENT_VERSION = (1 << 8) | 34;
export const protocolMajor = (v: number) => v & 0xff00;
export const protocolMinor = (v: number) => v & 0x00ff;
export const formatProtocol = (v: number) => `${protocolMajor(v) >> 8}.${protocolMinor(v)}`;

/** Worker operations used here (worker-protocol.hh's `wop*`). */
export const Op = {
  IsValidPath: 1,
  AddTempRoot: 11,
  SetOptions: 19,
  QueryPathInfo: 26,
  QueryValidPaths: 31,
  AddToStoreNar: 39,
  AddMultipleToStore: 44,
} as const;

/** Oldest minor version with each feature. */
export const MinMinor = {
  /** QueryPathInfo answers "not valid" with a 0 instead of an error. */
  queryPathInfoOptional: 17,
  /** Structured log messages (activities, results). */
  activities: 20,
  /** AddToStoreNar takes its NAR framed. */
  framedNar: 23,
  /** Errors as a structure (type, level, message, traces). */
  structuredErrors: 26,
  /** QueryValidPaths takes a "substitute" flag. */
  queryValidPathsSubstitute: 27,
  /** AddMultipleToStore exists. */
  addMultiple: 32,
  /** The daemon tells its Nix version after the handshake. */
  daemonVersion: 33,
} as const;

export const Stderr = {
  NEXT: 0x6f6c6d67,
  READ: 0x64617461,
  WRITE: 0x64617416,
  LAST: 0x616c7473,
  ERROR: 0x63787470,
  START_ACTIVITY: 0x53545254,
  STOP_ACTIVITY: 0x53544f50,
  RESULT: 0x52534c54,
} as const;

/** Nix's verbosity levels (lvlError = 0 … lvlVomit = 7). */
export const Verbosity = { error: 0, warn: 1, notice: 2, info: 3, talkative: 4, chatty: 5, debug: 6, vomit: 7 } as const;

const ZEROS = Buffer.alloc(8);

/** Builds one message: numbers, booleans, strings and string lists as the daemon reads them. */
export class WireWriter {
  private readonly parts: Buffer[] = [];

  u64(n: number | bigint): this {
    const b = Buffer.allocUnsafe(8);
    if (typeof n === 'bigint') b.writeBigUInt64LE(n);
    else {
      if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`not a 64-bit unsigned number: ${n}`);
      b.writeUInt32LE(n % 0x1_0000_0000, 0);
      b.writeUInt32LE(Math.floor(n / 0x1_0000_0000), 4);
    }
    this.parts.push(b);
    return this;
  }

  bool(v: boolean): this {
    return this.u64(v ? 1 : 0);
  }

  string(s: string | Uint8Array): this {
    const bytes = typeof s === 'string' ? Buffer.from(s, 'utf8') : Buffer.from(s.buffer, s.byteOffset, s.byteLength);
    this.u64(bytes.length);
    this.parts.push(bytes);
    if (bytes.length % 8) this.parts.push(ZEROS.subarray(0, 8 - (bytes.length % 8)));
    return this;
  }

  strings(list: Iterable<string>): this {
    const items = [...list];
    this.u64(items.length);
    for (const s of items) this.string(s);
    return this;
  }

  /** Appends bytes already in wire form (a frame, a nested message). */
  raw(b: Buffer): this {
    this.parts.push(b);
    return this;
  }

  toBuffer(): Buffer {
    return Buffer.concat(this.parts);
  }
}

/** The header of one frame of `length` bytes (a length of 0 ends the framed data). */
export const frameHeader = (length: number): Buffer => new WireWriter().u64(length).toBuffer();

/** How many bytes `data.length` bytes take as frames of at most `frameBytes` (a length word each). */
export const framedLength = (length: number, frameBytes: number): number => length + 8 * Math.ceil(length / frameBytes);

/**
 * `data` as frames of at most `frameBytes` each (length word, bytes), in one buffer: one write per
 * chunk however many frames it holds. Empty data gives no frame (an empty frame ends the stream).
 * Written into `into` when it is large enough (a buffer the caller reuses), else into a new one.
 */
export function frames(data: Buffer, frameBytes: number, into?: Buffer): Buffer {
  const size = framedLength(data.length, frameBytes);
  const out = into && into.length >= size ? into.subarray(0, size) : Buffer.allocUnsafe(size);
  let at = 0;
  for (let off = 0; off < data.length; off += frameBytes) {
    const n = Math.min(frameBytes, data.length - off);
    out.writeUInt32LE(n, at);
    out.writeUInt32LE(0, at + 4);
    data.copy(out, at + 8, off, off + n);
    at += 8 + n;
  }
  return out;
}

/** Where answers are read from: `read(n)` resolves with exactly n bytes (or rejects at end of input). */
export interface ByteSource {
  read(n: number): Promise<Buffer>;
}

/** A ByteSource over bytes already in memory (tests, nested messages). */
export function bufferSource(buf: Buffer): ByteSource & { rest(): number } {
  let pos = 0;
  return {
    async read(n) {
      if (pos + n > buf.length) throw new Error(`unexpected end of data: wanted ${n} bytes at ${pos} of ${buf.length}`);
      pos += n;
      return buf.subarray(pos - n, pos);
    },
    rest: () => buf.length - pos,
  };
}

export async function readU64Big(src: ByteSource): Promise<bigint> {
  return (await src.read(8)).readBigUInt64LE(0);
}

export async function readU64(src: ByteSource): Promise<number> {
  const b = await src.read(8);
  const hi = b.readUInt32LE(4);
  if (hi >= 0x20_0000) throw new Error('protocol error: a number too large for this client');
  return hi * 0x1_0000_0000 + b.readUInt32LE(0);
}

export const readBool = async (src: ByteSource) => (await readU64(src)) !== 0;

/** Longest string accepted from the daemon (store paths, log lines, error messages). */
export const MAX_STRING = 64 * 1024 * 1024;

export async function readBytes(src: ByteSource): Promise<Buffer> {
  const n = await readU64(src);
  if (n > MAX_STRING) throw new Error(`protocol error: a string of ${n} bytes`);
  const padded = n % 8 ? n + 8 - (n % 8) : n;
  const b = await src.read(padded);
  for (let i = n; i < padded; i++) if (b[i] !== 0) throw new Error('protocol error: non-zero padding');
  return b.subarray(0, n);
}

export const readString = async (src: ByteSource) => (await readBytes(src)).toString('utf8');

export async function readStrings(src: ByteSource): Promise<string[]> {
  const n = await readU64(src);
  const out: string[] = [];
  for (let i = 0; i < n; i++) out.push(await readString(src));
  return out;
}

/** A path's metadata as the daemon keeps it (ValidPathInfo). `narHash` is `sha256:<hex>` on the wire; kept as sent. */
export interface DaemonPathInfo {
  path: string;
  deriver: string;
  /** Base-16 SHA-256 without a prefix (what AddToStoreNar sends), or `sha256:…` in any encoding Nix parses. */
  narHash: string;
  references: string[];
  registrationTime: number;
  narSize: number;
  ultimate: boolean;
  sigs: string[];
  /** Content address (`fixed:…`, `text:…`), or '' for none. */
  ca: string;
}

/** Writes a path info the way AddToStoreNar / AddMultipleToStore (format 16) send it; `withPath` puts the path first. */
export function writePathInfo(w: WireWriter, info: DaemonPathInfo, withPath: boolean): WireWriter {
  if (withPath) w.string(info.path);
  w.string(info.deriver).string(info.narHash).strings([...info.references].sort())
    .u64(info.registrationTime).u64(info.narSize).bool(info.ultimate).strings([...info.sigs].sort()).string(info.ca);
  return w;
}

/** Reads a path info without its path (the QueryPathInfo answer, protocol ≥ 1.16). */
export async function readPathInfo(src: ByteSource, path: string): Promise<DaemonPathInfo> {
  const deriver = await readString(src);
  const narHash = await readString(src);
  const references = await readStrings(src);
  const registrationTime = await readU64(src);
  const narSize = await readU64(src);
  const ultimate = await readBool(src);
  const sigs = await readStrings(src);
  const ca = await readString(src);
  return { path, deriver, narHash, references, registrationTime, narSize, ultimate, sigs, ca };
}

/** What the daemon says while it works. */
export type StderrMessage =
  | { type: 'last' }
  | { type: 'error'; message: string; status?: number; traces: string[] }
  | { type: 'log'; text: string }
  | { type: 'start'; id: bigint; level: number; activity: number; text: string; fields: Array<number | bigint | string>; parent: bigint }
  | { type: 'stop'; id: bigint }
  | { type: 'result'; id: bigint; result: number; fields: Array<number | bigint | string> }
  | { type: 'read'; length: number }
  | { type: 'write'; data: Buffer };

async function readFields(src: ByteSource): Promise<Array<bigint | string>> {
  const n = await readU64(src);
  const out: Array<bigint | string> = [];
  for (let i = 0; i < n; i++) {
    const kind = await readU64(src);
    if (kind === 0) out.push(await readU64Big(src));
    else if (kind === 1) out.push(await readString(src));
    else throw new Error(`protocol error: log field of unknown type ${kind}`);
  }
  return out;
}

/** Reads one stderr message; `minor` is the negotiated protocol minor version. */
export async function readStderr(src: ByteSource, minor: number): Promise<StderrMessage> {
  const code = await readU64(src);
  switch (code) {
    case Stderr.LAST:
      return { type: 'last' };
    case Stderr.NEXT:
      return { type: 'log', text: (await readString(src)).replace(/\n$/, '') };
    case Stderr.ERROR: {
      if (minor < MinMinor.structuredErrors) {
        const message = await readString(src);
        return { type: 'error', message, status: await readU64(src), traces: [] };
      }
      const kind = await readString(src);
      if (kind !== 'Error') throw new Error(`protocol error: error of type ${JSON.stringify(kind)}`);
      await readU64(src); // level
      await readString(src); // name (unused since Nix 2.4)
      const message = await readString(src);
      if ((await readU64(src)) !== 0) throw new Error('protocol error: error with a position');
      const traces: string[] = [];
      for (let i = await readU64(src); i > 0; i--) {
        if ((await readU64(src)) !== 0) throw new Error('protocol error: trace with a position');
        traces.push(await readString(src));
      }
      return { type: 'error', message, traces };
    }
    case Stderr.START_ACTIVITY: {
      const id = await readU64Big(src);
      const level = await readU64(src);
      const activity = await readU64(src);
      const text = await readString(src);
      const fields = await readFields(src);
      return { type: 'start', id, level, activity, text, fields, parent: await readU64Big(src) };
    }
    case Stderr.STOP_ACTIVITY:
      return { type: 'stop', id: await readU64Big(src) };
    case Stderr.RESULT: {
      const id = await readU64Big(src);
      const result = await readU64(src);
      return { type: 'result', id, result, fields: await readFields(src) };
    }
    case Stderr.READ:
      return { type: 'read', length: await readU64(src) };
    case Stderr.WRITE:
      return { type: 'write', data: await readBytes(src) };
    default:
      throw new Error(`protocol error: unknown message 0x${code.toString(16)} from the daemon`);
  }
}

/** Nix's error text without the terminal colours and the "error: " prefix it adds for humans. */
export function plainMessage(message: string): string {
  // eslint-disable-next-line no-control-regex
  return message.replace(/\x1b\[[0-9;]*m/g, '').replace(/^\s*error:\s*/, '').trim();
}

/** SetOptions' body for protocol ≥ 1.12: quiet, no builds, no substitutes; `overrides` are setting name → value. */
export function writeSetOptions(w: WireWriter, overrides: Record<string, string>): WireWriter {
  w.u64(Op.SetOptions)
    .bool(false) // keepFailed
    .bool(false) // keepGoing
    .bool(false) // tryFallback
    .u64(Verbosity.error)
    .u64(1) // maxBuildJobs
    .u64(0) // maxSilentTime
    .bool(true) // obsolete useBuildHook
    .u64(Verbosity.vomit) // verboseBuild: off
    .u64(0) // obsolete logType
    .u64(0) // obsolete printBuildTrace
    .u64(0) // buildCores
    .bool(false); // useSubstitutes
  const entries = Object.entries(overrides);
  w.u64(entries.length);
  for (const [k, v] of entries) w.string(k).string(v);
  return w;
}
