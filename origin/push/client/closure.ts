/**
 * The client's view of what it pushes: the closure of the given paths with
 * each path's metadata, from the local Nix (`nix path-info --json --recursive`,
 * one process for the whole closure), ordered so every path comes after its
 * references; and each NAR as a stream (`nix-store --dump`; `nix store dump-path` for a store given with --store), never held whole.
 */
import { spawn, type ChildProcessByStdio } from 'node:child_process';
import type { Readable } from 'node:stream';
import { realpathSync } from 'node:fs';
import { formatSha256Nix32, parseSha256 } from '../../../shared/hash.ts';
import { DEFAULT_STORE_DIR, parseStorePath } from '../../../shared/store-path.ts';
import { closureFromStoreDb } from './store-db-closure.ts';

export const NIX_COMMAND = ['--extra-experimental-features', 'nix-command'];

export type { LocalPath, NixSource } from './local-path.ts';
import type { LocalPath, NixSource } from './local-path.ts';

const storeArgs = (s: NixSource) => (s.store ? ['--store', s.store] : []);

function run(s: NixSource, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(s.nixBin ?? 'nix', [...NIX_COMMAND, ...args], { env: s.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    let err = '';
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d) => (err.length < 20_000 ? (err += d) : undefined));
    child.once('error', (e) => reject(new Error(`cannot run nix: ${e.message}`)));
    child.once('close', (code) => {
      if (code === 0) resolve(Buffer.concat(out).toString('utf8'));
      else reject(new Error(`nix ${args.slice(0, 3).join(' ')} failed: ${err.trim().split('\n').filter((l) => l.startsWith('error')).pop() ?? err.trim().split('\n').pop() ?? `exit ${code}`}`));
    });
  });
}

/** Parses `nix path-info --json` output (Nix 2.8: a list; newer: an object keyed by path). */
export function parsePathInfoJson(text: string): LocalPath[] {
  const raw = JSON.parse(text) as unknown;
  const entries: [string | undefined, Record<string, unknown>][] = Array.isArray(raw)
    ? raw.map((v: Record<string, unknown>) => [undefined, v])
    : Object.entries(raw as Record<string, Record<string, unknown>>);
  return entries.map(([key, v]) => {
    const path = (key ?? v.path) as string;
    if (v === null || typeof path !== 'string') throw new Error(`nix path-info: ${path} is not valid in the store`);
    if (v.valid === false) throw new Error(`nix path-info: ${path} is not valid in the store`);
    const info: LocalPath = {
      path,
      narHash: formatSha256Nix32(parseSha256(String(v.narHash))),
      narSize: Number(v.narSize),
      references: (v.references as string[] | undefined) ?? [],
      signatures: (v.signatures as string[] | undefined) ?? [],
    };
    if (typeof v.deriver === 'string') info.deriver = v.deriver;
    if (typeof v.ca === 'string' && v.ca) info.ca = v.ca;
    return info;
  });
}

/** Every path with its references before it (references to itself aside); stable otherwise. */
export function referencesFirst(paths: readonly LocalPath[]): LocalPath[] {
  const byPath = new Map(paths.map((p) => [p.path, p]));
  const out: LocalPath[] = [];
  const state = new Map<string, 'visiting' | 'done'>();
  const visit = (p: LocalPath) => {
    const stack: [LocalPath, number][] = [[p, 0]];
    state.set(p.path, 'visiting');
    while (stack.length) {
      const top = stack[stack.length - 1]!;
      const [node, i] = top;
      if (i < node.references.length) {
        top[1]++;
        const ref = byPath.get(node.references[i]!);
        if (ref && !state.has(ref.path)) {
          state.set(ref.path, 'visiting');
          stack.push([ref, 0]);
        }
        continue;
      }
      stack.pop();
      state.set(node.path, 'done');
      out.push(node);
    }
  };
  for (const p of paths) if (!state.has(p.path)) visit(p);
  return out;
}

/**
 * The store path an argument names: a store path, a file inside one, or a symlink to either (`./result`).
 * `--store` with a chroot store: the path as given (its links point into the chroot's /nix/store).
 */
export function storePathOf(arg: string, storeDir = DEFAULT_STORE_DIR): string {
  let path = arg;
  if (!path.startsWith(storeDir + '/')) {
    try {
      path = realpathSync(arg);
    } catch {
      throw new Error(`${arg}: no such file, and not a store path`);
    }
  }
  const slash = path.indexOf('/', storeDir.length + 1);
  const candidate = slash < 0 ? path : path.slice(0, slash);
  try {
    parseStorePath(candidate, storeDir);
  } catch {
    throw new Error(`${arg}: not a store path (nor a link to one) in ${storeDir}`);
  }
  return candidate;
}

/**
 * The closure of `roots` in the local store, references first: from the store's DB when it is this machine's
 * and readable here (store-db-closure.ts), else from `nix path-info`.
 */
export async function localClosure(s: NixSource, roots: readonly string[]): Promise<LocalPath[]> {
  if (!roots.length) return [];
  const fromDb = closureFromStoreDb(s, roots);
  if (fromDb) return referencesFirst(fromDb);
  return referencesFirst(parsePathInfoJson(await run(s, ['path-info', '--json', '--recursive', ...storeArgs(s), ...roots])));
}

/** The NAR of a path as a stream; `kill` stops Nix early. */
export function dumpNar(s: NixSource, path: string): { stream: Readable; done: Promise<void>; kill: () => void } {
  // nix-store --dump streams like `nix store dump-path`, without its "very large path" warning; but it reads
  // the file system, not the store --store names (Nix 2.8: "getting status of /nix/store/…" for a chroot
  // store's path), so a store given with --store is dumped by `nix store dump-path --store`.
  const [cmd, args] = s.store
    ? [s.nixBin ?? 'nix', [...NIX_COMMAND, 'store', 'dump-path', ...storeArgs(s), path]]
    : [s.nixStoreBin ?? 'nix-store', ['--dump', path]];
  const child: ChildProcessByStdio<null, Readable, Readable> = spawn(cmd, args, {
    env: s.env ?? process.env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let err = '';
  child.stderr.on('data', (d) => (err.length < 4000 ? (err += d) : undefined));
  let killed = false;
  const done = new Promise<void>((resolve, reject) => {
    child.once('error', (e) => reject(new Error(`cannot run nix: ${e.message}`)));
    child.once('close', (code) => (code === 0 || killed ? resolve() : reject(new Error(`${s.store ? 'nix store dump-path' : 'nix-store --dump'} ${path} failed: ${err.trim().split('\n').pop() ?? `exit ${code}`}`))));
  });
  done.catch(() => {});
  return {
    stream: child.stdout,
    done,
    kill: () => {
      killed = true;
      if (child.exitCode === null) child.kill('SIGTERM');
    },
  };
}

/** Reads exact byte counts from a stream, holding at most one request's worth. */
export class ExactReader {
  private readonly it: AsyncIterator<Buffer>;
  private rest: Buffer | undefined;
  constructor(stream: Readable | AsyncIterable<Buffer>) {
    this.it = (stream as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
  }
  /** Stops the source early (a generator's files are closed). */
  async close(): Promise<void> {
    await this.it.return?.();
  }
  /** The next `n` bytes (into `into` when given, a buffer of at least n bytes); fewer only when the stream ended. */
  async read(n: number, into?: Buffer): Promise<Buffer> {
    const out = into ? into.subarray(0, n) : Buffer.allocUnsafe(n);
    let have = 0;
    while (have < n) {
      let chunk = this.rest;
      this.rest = undefined;
      if (!chunk) {
        const r = await this.it.next();
        if (r.done) return out.subarray(0, have);
        chunk = r.value;
      }
      const take = Math.min(chunk.length, n - have);
      chunk.copy(out, have, 0, take);
      have += take;
      if (take < chunk.length) this.rest = chunk.subarray(take);
    }
    return out;
  }
  /** Skips `n` bytes (a resumed upload's acknowledged ones), a bounded chunk at a time. */
  async skip(n: number): Promise<number> {
    let skipped = 0;
    while (skipped < n) {
      const b = await this.read(Math.min(n - skipped, 1 << 20));
      if (!b.length) break;
      skipped += b.length;
    }
    return skipped;
  }
}
