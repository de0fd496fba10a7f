/**
 * What `eris push` shows while it works: on a terminal one line redrawn in
 * place (paths, bytes, rate); in a CI log plain lines, one per path pushed,
 * per retry and per failure, and a summary at the end.
 */
import { formatBytes } from '../../../shared/bytes.ts';
import type { Writable } from 'node:stream';

export interface Progress {
  start(paths: number, bytes: number, present: number): void;
  bytes(n: number): void;
  pathDone(path: string, narSize: number): void;
  retry(what: string, reason: string, waitMs: number): void;
  failed(path: string, error: string): void;
  finish(): void;
}


export function createProgress(out: Writable & { isTTY?: boolean; columns?: number }, now: () => number = Date.now): Progress {
  const tty = out.isTTY === true;
  let total = { paths: 0, bytes: 0 };
  let paths = 0;
  let bytes = 0;
  let began = now();
  let timer: NodeJS.Timeout | undefined;
  const rate = () => {
    const s = (now() - began) / 1000;
    return s > 0 ? `${formatBytes(bytes / s)}/s` : '';
  };
  const bar = () => {
    const width = 20;
    const filled = total.bytes ? Math.round((width * bytes) / total.bytes) : 0;
    return `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${paths}/${total.paths} paths, ${formatBytes(bytes)}/${formatBytes(total.bytes)}, ${rate()}`;
  };
  const draw = () => tty && out.write(`\r\x1b[K${bar().slice(0, (out.columns ?? 100) - 1)}`);
  /** A line of its own: on a terminal, above the redrawn bar. */
  const line = (text: string) => {
    out.write(tty ? `\r\x1b[K${text}\n` : `${text}\n`);
    draw();
  };
  return {
    start(p, b, present) {
      total = { paths: p, bytes: b };
      began = now();
      line(`pushing ${p} paths (${formatBytes(b)}); ${present} already in the cache`);
      if (tty) timer = setInterval(draw, 200);
    },
    bytes(n) {
      bytes += n;
    },
    pathDone(path, narSize) {
      paths++;
      if (!tty) line(`pushed ${path} (${formatBytes(narSize)}) [${paths}/${total.paths}]`);
      else draw();
    },
    retry(what, reason, waitMs) {
      line(`retrying ${what} in ${(waitMs / 1000).toFixed(1)} s: ${reason}`);
    },
    failed(path, error) {
      line(`failed ${path}: ${error}`);
    },
    finish() {
      if (timer) clearInterval(timer);
      if (tty) out.write(`\r\x1b[K${bar()}\n`);
    },
  };
}
