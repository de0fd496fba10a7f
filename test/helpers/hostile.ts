/**
 * Raw HTTP for hostile-input tests: request targets and headers exactly as
 * written (fetch would normalise `..`, refuse NUL, or re-encode), a seeded
 * PRNG so generated inputs reproduce, and strace around the origin.
 */
import { connect } from 'node:net';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';

export interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
  /** The connection was closed before a complete response arrived. */
  incomplete: boolean;
}

/** Sends `head` (request line + headers, CRLF-separated, without the final blank line) and reads the response. */
export function rawRequest(port: number, head: string, o: { timeoutMs?: number; body?: Buffer } = {}): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const sock = connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`no response within ${o.timeoutMs ?? 10_000} ms to ${JSON.stringify(head.slice(0, 200))}`));
    }, o.timeoutMs ?? 10_000);
    sock.on('connect', () => {
      sock.write(Buffer.from(head + '\r\nConnection: close\r\n\r\n', 'latin1'));
      if (o.body) sock.write(o.body);
    });
    sock.on('data', (d) => chunks.push(d));
    sock.on('error', () => {}); // a reset after the response is fine; parse what came
    sock.on('close', () => {
      clearTimeout(timer);
      resolve(parseResponse(Buffer.concat(chunks)));
    });
  });
}

export function parseResponse(buf: Buffer): RawResponse {
  const end = buf.indexOf('\r\n\r\n');
  if (end < 0) return { status: 0, headers: {}, body: buf, incomplete: true };
  const lines = buf.subarray(0, end).toString('latin1').split('\r\n');
  const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(lines[0] ?? '')?.[1] ?? 0);
  const headers: Record<string, string> = {};
  for (const l of lines.slice(1)) {
    const i = l.indexOf(':');
    if (i > 0) headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
  }
  let body = buf.subarray(end + 4);
  let incomplete = false;
  if (headers['transfer-encoding']?.includes('chunked')) {
    const out: Buffer[] = [];
    let p = 0;
    incomplete = true;
    while (p < body.length) {
      const nl = body.indexOf('\r\n', p);
      if (nl < 0) break;
      const n = parseInt(body.subarray(p, nl).toString('latin1'), 16);
      if (!(n >= 0)) break;
      if (n === 0) {
        incomplete = false;
        break;
      }
      out.push(body.subarray(nl + 2, nl + 2 + n));
      p = nl + 2 + n + 2;
    }
    body = Buffer.concat(out);
  } else if (headers['content-length'] !== undefined) {
    incomplete = body.length < Number(headers['content-length']);
  }
  return { status, headers, body, incomplete };
}

/** mulberry32: small, fast, seeded; the same seed gives the same inputs. */
export function prng(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return {
    next,
    int: (n: number) => Math.floor(next() * n),
    pick: <T>(xs: readonly T[]): T => xs[Math.floor(next() * xs.length)]!,
    chance: (p: number) => next() < p,
  };
}

export const hasStrace = spawnSync('strace', ['-V'], { stdio: 'ignore' }).status === 0;

export interface Trace {
  /** Stops tracing and returns every path argument of a file syscall the process made. */
  stop(): Promise<string[]>;
}

/** Attaches `strace -f -e trace=%file` to a running process (needs ptrace rights: root in CI). */
export async function straceFiles(pid: number, outFile: string): Promise<Trace> {
  const child: ChildProcess = spawn('strace', ['-f', '-s', '4096', '-e', 'trace=%file', '-o', outFile, '-p', String(pid)], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  await new Promise<void>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`strace did not attach: ${err}`)), 10_000);
    child.stderr!.on('data', (d) => {
      err += d;
      if (/attached/.test(err)) {
        clearTimeout(t);
        resolve();
      }
    });
    child.once('exit', (code) => {
      clearTimeout(t);
      reject(new Error(`strace exited ${code}: ${err}`));
    });
  });
  return {
    async stop() {
      const exited = new Promise<void>((r) => child.once('exit', () => r()));
      child.kill('SIGINT'); // detaches and leaves the traced process running
      await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
      const text = readFileSync(outFile, 'utf8');
      const paths: string[] = [];
      for (const m of text.matchAll(/"((?:[^"\\]|\\.)*)"/g)) paths.push(m[1]!);
      return paths;
    },
  };
}
