/**
 * Serialises a file-system object into Nix's NAR format as a stream. Memory is
 * bounded by the chunk size, whatever the NAR size. Strings are u64-LE length +
 * bytes + zero padding to 8; directory entries are sorted by name bytes; a
 * regular file is executable when its owner x bit is set.
 *
 * The same walk serves byte ranges (file contents wholly before the range are
 * never read) and listings (no contents read at all, NAR offsets recorded).
 *
 * It reads through Node's promise API, one thread-pool round trip per call; a
 * small NAR (narBuffer) is read with the synchronous calls instead, which made
 * most of a small path's NAR time: a one-file path took about a dozen round
 * trips (lstat, open, read, close, …), each waiting for a pool thread and an
 * event-loop turn, and on a busy machine a scheduler slice.
 */
import { closeSync, lstatSync, openSync, readdirSync, readlinkSync, readSync, type Stats } from 'node:fs';
import { lstat, open, readdir, readlink } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { CHUNK, takeChunk } from './buffer-pool.ts';

const FLUSH_AT = 64 * 1024;
const PAD = Buffer.alloc(8);

/** A piece of NAR: bytes, or a count of bytes skipped without being produced. */
type Piece = Buffer | number;

/** A NAR string as written: its length as a u64, its bytes, zero padding to 8. */
function encoded(s: string): Buffer {
  const b = Buffer.from(s);
  const out = Buffer.alloc(8 + Math.ceil(b.length / 8) * 8);
  out.writeUInt32LE(b.length, 0);
  b.copy(out, 8);
  return out;
}

/** The NAR format's own words, encoded once: most of a small NAR's strings are these. */
const TOKENS = new Map(['nix-archive-1', '(', ')', 'type', 'regular', 'executable', '', 'contents', 'symlink', 'target', 'directory', 'entry', 'name', 'node'].map((t) => [t, encoded(t)]));

/** Buffers small metadata writes so they leave as few large chunks; tracks the NAR offset. */
class Writer {
  private parts: Buffer[] = [];
  private size = 0;
  /** Offset in the NAR of the next byte written. */
  pos = 0;

  str(s: string | Buffer): void {
    const token = typeof s === 'string' ? TOKENS.get(s) : undefined;
    if (token) return this.raw(token);
    const b = typeof s === 'string' ? Buffer.from(s) : s;
    this.u64(b.length);
    this.raw(b);
    this.pad(b.length);
  }

  u64(n: number): void {
    // Sizes are below 2^53: two 32-bit halves, no BigInt.
    const b = Buffer.allocUnsafe(8);
    b.writeUInt32LE(n % 0x1_0000_0000, 0);
    b.writeUInt32LE(Math.floor(n / 0x1_0000_0000), 4);
    this.raw(b);
  }

  pad(len: number): void {
    const rem = len % 8;
    if (rem) this.raw(PAD.subarray(0, 8 - rem));
  }

  raw(b: Buffer): void {
    this.parts.push(b);
    this.size += b.length;
    this.pos += b.length;
  }

  get pending(): number {
    return this.size;
  }

  take(): Buffer {
    const out = this.parts.length === 1 ? this.parts[0]! : Buffer.concat(this.parts, this.size);
    this.parts = [];
    this.size = 0;
    return out;
  }
}

export class NarSourceChangedError extends Error {
  override name = 'NarSourceChangedError';
}

/** What a listing learns about each node. */
export type ListingNode =
  | { type: 'directory'; entries: Record<string, ListingNode> }
  | { type: 'regular'; size: number; executable?: true; narOffset: number }
  | { type: 'symlink'; target: string };

/** A file open for reading: a FileHandle, or a descriptor read synchronously. */
interface OpenFile {
  read(buffer: Buffer, offset: number, length: number, position: number): Promise<{ bytesRead: number }> | { bytesRead: number };
  close(): Promise<void> | void;
}

/**
 * The file-system calls a walk makes; each may answer at once (sync) or later (a promise). An answer given at
 * once is used at once: awaiting it would still cost a microtask turn per call.
 */
interface WalkFs {
  lstat(path: Buffer): Stats | Promise<Stats>;
  readlink(path: Buffer): Buffer | Promise<Buffer>;
  readdir(path: Buffer): Buffer[] | Promise<Buffer[]>;
  open(path: Buffer): OpenFile | Promise<OpenFile>;
}

const promiseFs: WalkFs = {
  lstat: (p) => lstat(p),
  readlink: (p) => readlink(p, { encoding: 'buffer' }),
  readdir: (p) => readdir(p, { encoding: 'buffer' }),
  open: (p) => open(p, 'r'),
};

const syncFs: WalkFs = {
  lstat: (p) => lstatSync(p),
  readlink: (p) => readlinkSync(p, { encoding: 'buffer' }),
  readdir: (p) => readdirSync(p, { encoding: 'buffer' }),
  open(p) {
    const fd = openSync(p, 'r');
    return { read: (buffer, offset, length, position) => ({ bytesRead: readSync(fd, buffer, offset, length, position) }), close: () => closeSync(fd) };
  },
};

interface Walk {
  fs: WalkFs;
  /** File contents ending at or before this offset are skipped, not read. */
  skipBefore: number;
  /** Called for every node with its listing entry. */
  onNode?: (node: ListingNode, parent: ListingNode | null, name: string | null) => void;
}

async function* dumpFile(path: Buffer, size: number, w: Writer, walk: Walk): AsyncGenerator<Piece> {
  w.u64(size);
  if (size === 0) return;
  if (w.pos + size <= walk.skipBefore) {
    if (w.pending) yield w.take();
    w.pos += size;
    yield size;
    w.pad(size);
    return;
  }
  const opened = walk.fs.open(path);
  const fh = opened instanceof Promise ? await opened : opened;
  try {
    if (size <= FLUSH_AT) {
      // Small files ride along with the metadata in one chunk.
      const buf = Buffer.allocUnsafe(size);
      const got = fh.read(buf, 0, size, 0);
      const { bytesRead } = got instanceof Promise ? await got : got;
      if (bytesRead !== size) throw new NarSourceChangedError(`file shrank while reading: ${path.toString()}`);
      w.raw(buf);
    } else {
      if (w.pending) yield w.take();
      let pos = 0;
      while (pos < size) {
        const n = Math.min(CHUNK, size - pos);
        const buf = n === CHUNK ? takeChunk() : Buffer.allocUnsafe(n);
        const { bytesRead } = await fh.read(buf, 0, n, pos);
        if (bytesRead === 0) throw new NarSourceChangedError(`file shrank while reading: ${path.toString()}`);
        pos += bytesRead;
        w.pos += bytesRead;
        yield bytesRead === n ? buf : buf.subarray(0, bytesRead);
      }
    }
  } finally {
    const closed = fh.close();
    if (closed instanceof Promise) await closed;
  }
  w.pad(size);
}

async function* dumpNode(path: Buffer, w: Writer, walk: Walk, parent: ListingNode | null, name: string | null): AsyncGenerator<Piece> {
  const stat = walk.fs.lstat(path);
  const st = stat instanceof Promise ? await stat : stat;
  w.str('(');
  w.str('type');
  if (st.isSymbolicLink()) {
    const link = walk.fs.readlink(path);
    const target = link instanceof Promise ? await link : link;
    walk.onNode?.({ type: 'symlink', target: target.toString() }, parent, name);
    w.str('symlink');
    w.str('target');
    w.str(target);
  } else if (st.isFile()) {
    w.str('regular');
    const executable = (st.mode & 0o100) !== 0;
    if (executable) {
      w.str('executable');
      w.str('');
    }
    w.str('contents');
    if (walk.onNode) {
      const node: ListingNode = { type: 'regular', size: st.size, narOffset: w.pos + 8 };
      if (executable) node.executable = true;
      walk.onNode(node, parent, name);
    }
    yield* dumpFile(path, st.size, w, walk);
  } else if (st.isDirectory()) {
    w.str('directory');
    const node: ListingNode = { type: 'directory', entries: {} };
    walk.onNode?.(node, parent, name);
    const listed = walk.fs.readdir(path);
    const names = (listed instanceof Promise ? await listed : listed).sort(Buffer.compare);
    const slash = Buffer.from('/');
    for (const child of names) {
      w.str('entry');
      w.str('(');
      w.str('name');
      w.str(child);
      w.str('node');
      yield* dumpNode(Buffer.concat([path, slash, child]), w, walk, node, child.toString());
      w.str(')');
      if (w.pending >= FLUSH_AT) yield w.take();
    }
  } else {
    throw new Error(`cannot put a special file into a NAR: ${path.toString()}`);
  }
  w.str(')');
}

async function* walkNar(path: string, walk: Walk): AsyncGenerator<Piece> {
  const w = new Writer();
  w.str('nix-archive-1');
  yield* dumpNode(Buffer.from(path), w, walk, null, null);
  if (w.pending) yield w.take();
}

/** The whole NAR of `path`, as chunks. */
export async function* narChunks(path: string): AsyncGenerator<Buffer> {
  for await (const p of walkNar(path, { fs: promiseFs, skipBefore: 0 })) if (typeof p !== 'number') yield p;
}

/** Bytes [start, end) of the NAR of `path`; errors if the NAR is shorter than `end`. */
export async function* narRange(path: string, start: number, end: number): AsyncGenerator<Buffer> {
  let pos = 0;
  for await (const p of walkNar(path, { fs: promiseFs, skipBefore: start })) {
    if (typeof p === 'number') {
      pos += p;
      continue;
    }
    const s = pos;
    pos += p.length;
    if (pos <= start) continue;
    yield p.subarray(Math.max(0, start - s), Math.min(p.length, end - s));
    if (pos >= end) return;
  }
  if (pos < end) throw new NarSourceChangedError(`NAR of ${path} ended at ${pos}, before ${end}`);
}

/** The listing `nix store ls` reads from `<hash>.ls`: the tree with sizes and NAR offsets. */
export async function narListing(path: string): Promise<{ version: 1; root: ListingNode }> {
  let root: ListingNode | undefined;
  const walk: Walk = {
    fs: promiseFs,
    skipBefore: Number.POSITIVE_INFINITY,
    onNode(node, parent, name) {
      if (parent === null) root = node;
      else if (parent.type === 'directory') parent.entries[name!] = node;
    },
  };
  for await (const _ of walkNar(path, walk)) {
    // Only metadata is produced; contents are skipped.
  }
  return { version: 1, root: root! };
}

/**
 * The whole NAR of a small path as one buffer, read with synchronous calls: it is done within the
 * calling task, with no thread-pool round trip. For paths whose registered NarSize is small (the
 * caller decides; the event loop waits for the reads). Fails when the bytes differ in size from
 * what the DB registered.
 */
export async function narBuffer(path: string, expectedSize: number): Promise<Buffer> {
  const parts: Buffer[] = [];
  let size = 0;
  for await (const p of walkNar(path, { fs: syncFs, skipBefore: 0 })) {
    if (typeof p === 'number') continue;
    size += p.length;
    if (size > expectedSize) throw new NarSourceChangedError(`NAR of ${path} grew beyond its registered size ${expectedSize}`);
    parts.push(p);
  }
  if (size !== expectedSize) throw new NarSourceChangedError(`NAR of ${path} is ${size} bytes, registered as ${expectedSize}`);
  return parts.length === 1 ? parts[0]! : Buffer.concat(parts, size);
}

/**
 * NAR bytes [start, end) that fail (instead of ending cleanly) when the bytes
 * produced differ from what the DB registered.
 */
export async function* checkedNar(path: string, expectedSize?: number, range?: { start: number; end: number }): AsyncGenerator<Buffer> {
  const start = range?.start ?? 0;
  const end = range?.end ?? expectedSize ?? Number.POSITIVE_INFINITY;
  const source = range ? narRange(path, start, end) : narChunks(path);
  let sent = start;
  for await (const chunk of source) {
    sent += chunk.length;
    if (expectedSize !== undefined && sent > expectedSize) {
      throw new NarSourceChangedError(`NAR of ${path} grew beyond its registered size ${expectedSize}`);
    }
    yield chunk;
  }
  if (expectedSize !== undefined && !range && sent !== expectedSize) {
    throw new NarSourceChangedError(`NAR of ${path} is ${sent} bytes, registered as ${expectedSize}`);
  }
}

/** checkedNar as a Readable, for pipelines (compression). */
export function narStream(path: string, expectedSize?: number): Readable {
  return Readable.from(checkedNar(path, expectedSize), { objectMode: false, highWaterMark: CHUNK });
}
