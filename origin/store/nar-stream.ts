/**
 * Serialises a file-system object into Nix's NAR format as a stream. Memory is
 * bounded by the chunk size, whatever the NAR size. Strings are u64-LE length +
 * bytes + zero padding to 8; directory entries are sorted by name bytes; a
 * regular file is executable when its owner x bit is set.
 */
import { lstat, open, readdir, readlink } from 'node:fs/promises';
import { Readable } from 'node:stream';

const CHUNK = 256 * 1024;
const FLUSH_AT = 64 * 1024;
const PAD = Buffer.alloc(8);

/** Buffers small metadata writes so they leave as few large chunks. */
class Writer {
  private parts: Buffer[] = [];
  private size = 0;

  str(s: string | Buffer): void {
    const b = typeof s === 'string' ? Buffer.from(s) : s;
    this.u64(b.length);
    this.raw(b);
    this.pad(b.length);
  }

  u64(n: number): void {
    const b = Buffer.allocUnsafe(8);
    b.writeBigUInt64LE(BigInt(n));
    this.raw(b);
  }

  pad(len: number): void {
    const rem = len % 8;
    if (rem) this.raw(PAD.subarray(0, 8 - rem));
  }

  raw(b: Buffer): void {
    this.parts.push(b);
    this.size += b.length;
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

async function* dumpFile(path: Buffer, size: number, w: Writer): AsyncGenerator<Buffer> {
  w.u64(size);
  if (size === 0) return;
  const fh = await open(path, 'r');
  try {
    let left = size;
    // Small files ride along with the metadata in one chunk.
    if (size <= FLUSH_AT) {
      const buf = Buffer.allocUnsafe(size);
      const { bytesRead } = await fh.read(buf, 0, size, 0);
      if (bytesRead !== size) throw new NarSourceChangedError(`file shrank while reading: ${path.toString()}`);
      w.raw(buf);
      left = 0;
    } else {
      if (w.pending) yield w.take();
      let pos = 0;
      while (left > 0) {
        const n = Math.min(CHUNK, left);
        const buf = Buffer.allocUnsafe(n);
        const { bytesRead } = await fh.read(buf, 0, n, pos);
        if (bytesRead === 0) throw new NarSourceChangedError(`file shrank while reading: ${path.toString()}`);
        pos += bytesRead;
        left -= bytesRead;
        yield bytesRead === n ? buf : buf.subarray(0, bytesRead);
      }
    }
  } finally {
    await fh.close();
  }
  w.pad(size);
}

async function* dumpNode(path: Buffer, w: Writer): AsyncGenerator<Buffer> {
  const st = await lstat(path);
  w.str('(');
  w.str('type');
  if (st.isSymbolicLink()) {
    w.str('symlink');
    w.str('target');
    w.str(await readlink(path, { encoding: 'buffer' }));
  } else if (st.isFile()) {
    w.str('regular');
    if (st.mode & 0o100) {
      w.str('executable');
      w.str('');
    }
    w.str('contents');
    yield* dumpFile(path, st.size, w);
  } else if (st.isDirectory()) {
    w.str('directory');
    const names = (await readdir(path, { encoding: 'buffer' })).sort(Buffer.compare);
    const slash = Buffer.from('/');
    for (const name of names) {
      w.str('entry');
      w.str('(');
      w.str('name');
      w.str(name);
      w.str('node');
      yield* dumpNode(Buffer.concat([path, slash, name]), w);
      w.str(')');
      if (w.pending >= FLUSH_AT) yield w.take();
    }
  } else {
    throw new Error(`cannot put a special file into a NAR: ${path.toString()}`);
  }
  w.str(')');
}

/** The NAR of `path`, as chunks. */
export async function* narChunks(path: string): AsyncGenerator<Buffer> {
  const w = new Writer();
  w.str('nix-archive-1');
  yield* dumpNode(Buffer.from(path), w);
  if (w.pending) yield w.take();
}

/**
 * A readable NAR stream that fails (instead of ending cleanly) when the bytes
 * produced differ from `expectedSize`, e.g. because the path changed on disk.
 */
export function narStream(path: string, expectedSize?: number): Readable {
  async function* checked(): AsyncGenerator<Buffer> {
    let sent = 0;
    for await (const chunk of narChunks(path)) {
      sent += chunk.length;
      if (expectedSize !== undefined && sent > expectedSize) {
        throw new NarSourceChangedError(`NAR of ${path} grew beyond its registered size ${expectedSize}`);
      }
      yield chunk;
    }
    if (expectedSize !== undefined && sent !== expectedSize) {
      throw new NarSourceChangedError(`NAR of ${path} is ${sent} bytes, registered as ${expectedSize}`);
    }
  }
  return Readable.from(checked(), { objectMode: false, highWaterMark: CHUNK });
}
