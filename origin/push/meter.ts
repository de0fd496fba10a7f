/**
 * A pass-through stream that counts and hashes (SHA-256) what flows through it and fails with the
 * error `over()` gives as soon as more than `max` bytes came: how a staged file, a part and a NAR
 * being checked are each received or read, bounded.
 */
import { createHash } from 'node:crypto';
import { Transform } from 'node:stream';

export interface Meter {
  stream: Transform;
  /** Bytes that went through so far. */
  size(): number;
  /** The SHA-256 of what went through (once, at the end). */
  sha256(): Buffer;
  /** True once the bound was passed. */
  readonly over: boolean;
}

export function hashingMeter(max: number, over: () => Error): Meter {
  const hash = createHash('sha256');
  let size = 0;
  let passed = false;
  const stream = new Transform({
    transform(chunk: Buffer, _e, cb) {
      size += chunk.length;
      if (size > max) {
        passed = true;
        return cb(over());
      }
      hash.update(chunk);
      cb(null, chunk);
    },
  });
  return { stream, size: () => size, sha256: () => hash.digest(), get over() { return passed; } };
}
