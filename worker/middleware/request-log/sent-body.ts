/**
 * What actually left: a response body passed through a counting stream that
 * reports, once, how many bytes were handed on and how the body ended —
 * `complete`, `cut-origin` (the body the origin was sending failed, or ended
 * short of its Content-Length: the origin died, the tunnel dropped) or
 * `cut-client` (the client went away and the runtime cancelled the body).
 * Two ways, one contract: `countSentBody` (a pull per chunk; Node, and
 * answers without a length) and `countIntoFixedLength` (workerd, an answer
 * with a Content-Length). Memory stays one or two chunks either way.
 */

export type BodyEnd = 'complete' | 'cut-origin' | 'cut-client';

export interface SentBody {
  /** Bytes handed on to the client (a chunk is counted when it is passed on). */
  bytes: number;
  end: BodyEnd;
  /** For a cut: what the origin's stream failed with, or the cancellation reason. */
  error?: string;
}

/**
 * Wraps `body`; `done` is called exactly once, when the body completed or was
 * cut. `expectedBytes` (the Content-Length, when there is one) turns a body
 * that ended early without an error into a cut.
 */
export function countSentBody(body: ReadableStream<Uint8Array>, expectedBytes: number | null, done: (sent: SentBody) => void): ReadableStream<Uint8Array> {
  const reader = body.getReader();
  let bytes = 0;
  const end = once(done, () => bytes);
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      let chunk: ReadableStreamReadResult<Uint8Array>;
      try {
        chunk = await reader.read();
      } catch (err) {
        end('cut-origin', err);
        controller.error(err);
        return;
      }
      if (chunk.done) {
        if (expectedBytes !== null && bytes < expectedBytes) {
          const err = new Error(`body ended after ${bytes} of ${expectedBytes} bytes`);
          end('cut-origin', err);
          controller.error(err);
          return;
        }
        end('complete');
        controller.close();
        return;
      }
      bytes += chunk.value.byteLength;
      controller.enqueue(chunk.value);
    },
    cancel(reason) {
      end('cut-client', reason ?? 'cancelled');
      return reader.cancel(reason);
    },
  }, { highWaterMark: 0 });
}

/**
 * workerd sends a body from a JS stream chunked, dropping the Content-Length
 * (which Nix shows and curl's resume relies on); through a FixedLengthStream
 * it keeps it. This counts in the same stage that fixes the length: one loop
 * reads the origin's body (BYOB, `readAtLeast` CHUNK/2 into CHUNK-byte
 * buffers) and writes each chunk into the FixedLengthStream, with one write
 * in flight while the next chunk is read. A chunk is counted when the native
 * stream takes it. (The JS pull stream piped into a FixedLengthStream it
 * replaces ran NARs at ~0.1× the do-nothing Worker under wrangler dev.)
 */
export function countIntoFixedLength(body: ReadableStream<Uint8Array>, length: number, done: (sent: SentBody) => void): ReadableStream<Uint8Array> {
  const fixed = new FixedLengthStream(length);
  const writer = fixed.writable.getWriter();
  const read = chunkReader(body, () => length - bytes);
  let bytes = 0;
  const end = once(done, () => bytes);
  const clientGone = (err: unknown) => {
    end('cut-client', err ?? 'cancelled');
    read.cancel(err);
  };
  const originCut = async (err: unknown) => {
    end('cut-origin', err);
    await writer.abort(err).catch(() => {});
  };
  // The client went away (the runtime cancelled the readable side): cancel the origin's body now, not at its next chunk.
  writer.closed.catch(clientGone);
  void (async () => {
    let writing: Promise<void> = Promise.resolve();
    for (;;) {
      let chunk: ReadableStreamReadResult<Uint8Array>;
      try {
        chunk = await read.next();
      } catch (err) {
        return originCut(err);
      }
      try {
        await writing;
      } catch (err) {
        return clientGone(err);
      }
      if (chunk.done) break;
      if (chunk.value.byteLength === 0) continue;
      bytes += chunk.value.byteLength;
      writing = writer.write(chunk.value);
    }
    if (bytes < length) return originCut(new Error(`body ended after ${bytes} of ${length} bytes`));
    try {
      await writer.close();
    } catch (err) {
      return clientGone(err);
    }
    end('complete');
  })();
  return fixed.readable;
}

const CHUNK = 256 * 1024;

type ByobReader = ReadableStreamBYOBReader & { readAtLeast?: (minBytes: number, view: Uint8Array) => Promise<ReadableStreamReadResult<Uint8Array>> };

/**
 * Large chunks where the stream is a byte stream (a fetch body is): each chunk costs a JS round, whatever its size.
 * Buffers no larger than what is still to come (a small NAR or narinfo: one small buffer, one read).
 */
function chunkReader(body: ReadableStream<Uint8Array>, remaining: () => number): { next(): Promise<ReadableStreamReadResult<Uint8Array>>; cancel(reason: unknown): void } {
  let byob: ByobReader | undefined;
  try {
    byob = body.getReader({ mode: 'byob' }) as ByobReader;
  } catch {
    // not a byte stream: its own chunks
  }
  const reader = byob ?? body.getReader();
  return {
    next: () => {
      if (!byob) return (reader as ReadableStreamDefaultReader<Uint8Array>).read();
      const size = Math.min(CHUNK, Math.max(1, remaining()));
      const view = new Uint8Array(size);
      return byob.readAtLeast ? byob.readAtLeast(Math.ceil(size / 2), view) : byob.read(view);
    },
    cancel: (reason) => void reader.cancel(reason).catch(() => {}),
  };
}

/** The `done` callback, called once, with the bytes counted so far. */
function once(done: (sent: SentBody) => void, bytes: () => number): (how: BodyEnd, error?: unknown) => void {
  let ended = false;
  return (how, error) => {
    if (ended) return;
    ended = true;
    done(error === undefined ? { bytes: bytes(), end: how } : { bytes: bytes(), end: how, error: error instanceof Error ? error.message : String(error) });
  };
}
