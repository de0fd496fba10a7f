/**
 * What actually left: a response body passed through a counting stream that
 * reports, once, how many bytes were handed on and how the body ended —
 * `complete`, `cut-origin` (the body the origin was sending failed, or ended
 * short of its Content-Length: the origin died, the tunnel dropped) or
 * `cut-client` (the client went away and the runtime cancelled the body).
 * The counting happens in the pull that moves each chunk from the origin's
 * stream to the client's, so memory stays one chunk, as before.
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
  let ended = false;
  const end = (how: BodyEnd, error?: unknown) => {
    if (ended) return;
    ended = true;
    done(error === undefined ? { bytes, end: how } : { bytes, end: how, error: error instanceof Error ? error.message : String(error) });
  };
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
