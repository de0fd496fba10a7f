/**
 * `eris push` as a CI runner uses it: a closure built in the client's store,
 * pushed with only a token through `wrangler dev` whose MAX_UPLOAD_BYTES is
 * 1 MB, so every path of a few MB goes in many parts; `eris serve` (push_dir
 * set, a chroot store of its own) checks each part, the whole NAR, and imports
 * through the same path stock `nix copy --to` uses. Fresh clients copy the
 * paths back trusting only the cache's key. One stack for every case here.
 */
import { beforeAll, describe, expect, inject, it } from 'vitest';
import { execFileSync, spawn } from 'node:child_process';
import { connect, type AddressInfo } from 'node:net';
import { createServer, request as httpRequest } from 'node:http';
import { once } from 'node:events';
import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { nixCopy, nixEnv, runNix } from '../helpers/nix.ts';
import { ERIS_CLI } from '../helpers/processes.ts';
import { ensureModernNix, modernNixCopy, modernNixMissing, MODERN_NIX_VERSION, runModernNix } from '../helpers/modern-nix.ts';
import { useStack } from '../helpers/stack.ts';
import { EDGE_SECRET_HEADER } from '../../shared/contract.ts';
import { until } from '../helpers/faults.ts';
import { startRecordingProxy } from '../helpers/recording-proxy.ts';
import { encodeBatch, partsNarFile, pushUrls, type BatchEntry, type UploadState } from '../../shared/push-protocol.ts';
import { parsePathInfoJson } from '../../origin/push/client/closure.ts';
import { narInfoFor } from '../../origin/push/client/run.ts';
import { buildPackedCli } from '../../scripts/build-cli.ts';

const fixture = inject('fixture');
const MAX_UPLOAD = 1_000_000;
const PUSH_NIX = new URL('../fixtures/push.nix', import.meta.url).pathname;

function build(attr: string, salt: string, args: Record<string, number> = {}, options: string[] = []): string {
  const extra = [...Object.entries(args).flatMap(([k, v]) => ['--arg', k, String(v)]), ...options];
  return execFileSync('nix-build', [PUSH_NIX, '-A', attr, '--argstr', 'salt', salt, ...extra, '--no-out-link', '--option', 'sandbox', 'false', '--option', 'substituters', ''],
    { env: nixEnv(), encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
}

const closureOf = (path: string) => execFileSync('nix-store', ['-qR', path], { env: nixEnv(), encoding: 'utf8' }).trim().split('\n');
const infoOf = (path: string) => parsePathInfoJson(execFileSync('nix', ['--extra-experimental-features', 'nix-command', 'path-info', '--json', path], { env: nixEnv(), encoding: 'utf8' }))[0]!;
const narOf = (path: string) => execFileSync('nix-store', ['--dump', path], { env: nixEnv(), maxBuffer: 1 << 30 });
const sha256Hex = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/**
 * A wide closure of small paths made fast (two processes, no builds): `n - 1` leaves of `kib` KiB of random
 * bytes (`nix-store --add`) and a top that refers to all of them (builtins.toFile). References first.
 */
function wideClosure(dir: string, n: number, kib = 2): string[] {
  mkdirSync(dir);
  const names = Array.from({ length: n - 1 }, (_, i) => `leaf-${i}`);
  for (const name of names) {
    mkdirSync(join(dir, name));
    writeFileSync(join(dir, name, 'data'), randomBytes(kib * 1024));
  }
  const leaves = execFileSync('nix-store', ['--add', ...names], { cwd: dir, env: nixEnv(), encoding: 'utf8' }).trim().split('\n');
  const top = JSON.parse(execFileSync('nix-instantiate', ['--eval', '--read-write-mode', '-E',
    `builtins.toFile "wide-top" (builtins.concatStringsSep " " (map builtins.storePath [ ${leaves.map((l) => JSON.stringify(l)).join(' ')} ]))`],
  { env: nixEnv(), encoding: 'utf8' })) as string;
  return [...leaves, top];
}

/** A batch entry as eris push makes it: the path's narinfo and its whole NAR. */
const entryOf = (path: string, nar = narOf(path)): BatchEntry => ({ narinfo: narInfoFor(infoOf(path)), nar });

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** `eris push ARGS…` as its own process; `started` resolves with the child so a test can act while it runs. */
function erisPush(args: string[], env: Record<string, string>): { done: Promise<Run>; output: () => string; kill: () => Promise<Run> } {
  const child = spawn(process.execPath, [...ERIS_CLI, 'push', ...args], { env: nixEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  const timer = setTimeout(() => child.kill('SIGKILL'), 240_000);
  const done = new Promise<Run>((resolve) => child.once('close', (code) => {
    clearTimeout(timer);
    resolve({ code, stdout, stderr });
  }));
  return { done, output: () => stderr, kill: () => (child.kill('SIGKILL'), done) };
}

/** Every part of `storePath`'s uploads that reached the origin (acknowledged, refused or held already), by offset. */
function partOffsets(log: string, storePath: string): { received: number[]; all: number[] } {
  const parts = events(log, 'push: part received').filter((e) => e.storePath === storePath);
  const ids = new Set(parts.map((e) => e.id as string));
  const refused = events(log, 'push refused').map((e) => /uploads\/([0-9a-f]{32})\?offset=(\d+)/.exec(e.path as string))
    .filter((m) => m !== null && ids.has(m[1]!)).map((m) => Number(m![2]));
  const received = parts.map((e) => e.offset as number);
  const again = events(log, 'push: part held already').filter((e) => e.storePath === storePath).map((e) => e.offset as number);
  return { received, all: [...received, ...refused, ...again] };
}

/** A proxy to `target` that passes on every request but loses the answer to the `nth` part PUT (the origin took it). */
function ackLosingProxy(target: string, nth: number) {
  let parts = 0;
  return startRecordingProxy(target, {
    intercept: (req) => {
      if (!(req.method === 'PUT' && req.url!.includes('/v1/push/uploads/') && ++parts === nth)) return undefined;
      return (upstream, res) => {
        upstream.resume();
        upstream.on('end', () => res.socket?.destroy());
      };
    },
  });
}

/** The origin's log events with this message. */
function events(log: string, msg: string): Record<string, unknown>[] {
  return log.split('\n').filter((l) => l.includes(`"msg":"${msg}"`)).map((l) => JSON.parse(l.slice(l.indexOf('{'))) as Record<string, unknown>);
}

describe.skipIf(!fixture)('eris push: any size, in parts, through wrangler dev', () => {
  let root: string;
  let pushDir: string;
  /** Origin log lines of processes that were restarted, kept for counting. */
  let earlierLogs = '';
  let readNetrc: string;
  const salt = randomBytes(6).toString('hex');
  const s = useStack(() => ({
    keyBy: 'nix',
    keyName: 'eris-push-1',
    root(dir) {
      root = join(dir, 'root');
      execFileSync('nix-store', ['--store', root, '--init'], { env: nixEnv() });
      pushDir = join(dir, 'push');
      return root;
    },
    originArgs: (dir) => ['--push-dir', join(dir, 'push'), '--state-dir', join(dir, 'state')],
    vars: { MAX_UPLOAD_BYTES: String(MAX_UPLOAD) },
    user: 'ci',
    scopes: ['read', 'write'],
    caches: ['default'],
    tokens: {
      reader: { user: 'reader', scopes: ['read'] },
      ro: { user: 'ro', scopes: ['read'] },
      other: { user: 'other', scopes: ['read', 'write'], caches: ['elsewhere'] },
      old: { user: 'old', scopes: ['read', 'write'], expires: '2001-01-01T00:00:00Z' },
    },
  }));
  const env = () => ({ ERIS_TOKEN: s.token, ERIS_URL: s.edge.url });
  const allLogs = () => earlierLogs + s.origin.output();
  const validInOrigin = (p: string) => runNix(['path-info', '--store', root, p]).then((r) => r.code === 0);
  /** How many of `paths` are valid in the origin's store (one Nix process). */
  const validCount = async (paths: string[]) => {
    const r = await runNix(['path-info', '--json', '--store', root, ...paths]);
    return (JSON.parse(r.stdout) as { valid?: boolean }[]).filter((p) => p.valid !== false).length;
  };
  const staged = () => {
    const st = join(pushDir, 'staging');
    return existsSync(st) ? readdirSync(st).flatMap((c) => readdirSync(join(st, c)).map((f) => `${c}/${f}`)) : [];
  };
  /**
   * The staged files `pick` selects, once none is left or after 30 s: after a refusal, the streamed import an
   * upload's start began takes its marker away only when it notices the upload is gone (its daemon may still be starting).
   */
  const leftInStaging = async (pick: (f: string) => boolean = () => true) => {
    await until(() => !staged().some(pick), 30_000, 20);
    return staged().filter(pick);
  };
  // Connection: close — a pooled socket left idle while a beforeAll builds paths may be closed by wrangler dev
  // just as it is reused ("other side closed"); each request here is made on a socket of its own.
  const req = (method: string, path: string, body?: Buffer | string, auth = s.auth.Authorization!) =>
    fetch(s.edge.url + path, { method, body, headers: { Authorization: auth, Connection: 'close' }, signal: AbortSignal.timeout(30_000) });
  const readBack = async (paths: string[]) => {
    const fresh = join(s.dir, `fresh-${randomBytes(4).toString('hex')}`);
    const c = await nixCopy({ from: s.edge.url, to: fresh, paths, trustedKeys: s.publicKey, netrc: readNetrc, timeoutMs: 180_000 });
    expect(c.stderr).not.toMatch(/error/);
    expect(c.code).toBe(0);
    const v = await runNix(['store', 'verify', '--store', fresh, '-r', ...paths, '--option', 'trusted-public-keys', s.publicKey], { timeoutMs: 120_000 });
    expect(v.stderr).not.toMatch(/untrusted|corrupt|error/);
    expect(v.code).toBe(0);
  };

  beforeAll(async () => {
    const reader = s.tokens.reader!;
    readNetrc = join(s.dir, 'read-netrc');
    writeFileSync(readNetrc, `machine 127.0.0.1 login reader password ${reader}\n`);
  });

  it('pushes a closure whose paths need many parts each; a fresh client copies it back and verifies it; a second push sends nothing', async () => {
    const top = build('chain', salt, { n: 3, kib: 2500 });
    const closure = closureOf(top);
    expect(closure.length).toBe(3);
    symlinkSync(top, join(s.dir, 'result')); // as nix-build leaves it
    const r = await erisPush(['--cache', 'default', join(s.dir, 'result')], env()).done;
    expect(r.stderr).toMatch(/pushed 3 paths/);
    expect(r.code).toBe(0);
    for (const p of closure) expect(await validInOrigin(p)).toBe(true);
    // Every part within the edge's limit, each path in several, each acknowledged once.
    const parts = events(allLogs(), 'push: part received').filter((e) => closure.includes(e.storePath as string));
    for (const p of closure) {
      const mine = parts.filter((e) => e.storePath === p);
      expect(mine.length).toBeGreaterThan(2);
      expect(mine.every((e) => (e.size as number) <= MAX_UPLOAD)).toBe(true);
      expect(mine.reduce((a, e) => a + (e.size as number), 0)).toBe(infoOf(p).narSize);
    }
    expect(staged()).toEqual([]);
    await readBack([top]);

    const again = await erisPush(['--json', top], env()).done;
    expect(again.code).toBe(0);
    expect(JSON.parse(again.stdout)).toMatchObject({ closure: 3, missing: [], pushed: 0 });
  });

  it('resumes after the origin is killed and restarted mid-push: no acknowledged part sent twice, no half path', async () => {
    // The 250 MB, in the stack's 1 MB parts; the origin is killed once about a third has arrived.
    const big = build('chain', `${salt}-big`, { n: 1, kib: 244_200 });
    const narSize = infoOf(big).narSize;
    expect(narSize).toBeGreaterThan(250_000_000);
    const push = erisPush([big], env());
    expect(await until(() => events(s.origin.output(), 'push: part received').filter((e) => e.storePath === big).length >= 80, 180_000, 50)).toBe(true);
    await s.killOrigin();
    const beforeKill = s.origin.output();
    earlierLogs += beforeKill;
    expect(await validInOrigin(big)).toBe(false);
    // What the killed origin holds, from its staging directory: a part written and recorded just before the kill
    // may have no log line (the SIGKILL fell between its record and its log), so the record on disk is the truth.
    const held = staged().map((f) => /\.(\d+)-(\d+)\.ok$/.exec(f)).filter((m) => m !== null).map((m) => [Number(m![1]), Number(m![2])] as const);
    const loggedBefore = partOffsets(beforeKill, big).received;
    expect(held.length).toBeGreaterThanOrEqual(80);
    expect(loggedBefore.every((off) => held.some(([o]) => o === off))).toBe(true);
    await s.restartOrigin();
    const r = await push.done;
    expect(r.stderr).toMatch(/retrying/);
    expect(r.stderr).toMatch(/pushed 1 paths/);
    expect(r.code).toBe(0);
    expect(await validInOrigin(big)).toBe(true);
    // Every part that reached an origin, taken or refused (out of order): no offset twice, none held at the kill
    // sent again, and what was held plus what came after is the NAR, byte for byte once.
    const { all } = partOffsets(allLogs(), big);
    expect(new Set(all).size).toBe(all.length);
    const after = partOffsets(s.origin.output(), big).all;
    expect(after.filter((off) => held.some(([o]) => o === off))).toEqual([]);
    const afterBytes = events(s.origin.output(), 'push: part received').filter((e) => e.storePath === big).reduce((a, e) => a + (e.size as number), 0);
    expect(held.reduce((a, [, size]) => a + size, 0) + afterBytes).toBe(narSize);
    expect(events(allLogs(), 'push: imported').filter((e) => e.path === big)).toHaveLength(1);
    expect(staged()).toEqual([]);
    await readBack([big]);
  }, 420_000);

  it('an acknowledgement lost on the way: the client asks where the upload stands and does not send that part again', async () => {
    const p = build('chain', `${salt}-lost-ack`, { n: 1, kib: 5000 });
    const proxy = await ackLosingProxy(s.edge.url, 3);
    try {
      const r = await erisPush(['--edge-url', proxy.url, p], { ERIS_TOKEN: s.token }).done;
      expect(r.stderr).toMatch(/retrying part at/);
      expect(r.code).toBe(0);
    } finally {
      await proxy.close();
    }
    const { all } = partOffsets(allLogs(), p);
    expect(all.length).toBeGreaterThan(4);
    expect(new Set(all).size).toBe(all.length);
    expect(await validInOrigin(p)).toBe(true);
  });

  it('a push cut on the client (the runner killed) and run again resumes at the acknowledged offset', async () => {
    const p = build('chain', `${salt}-cut`, { n: 1, kib: 12_000 });
    const first = erisPush([p], env());
    expect(await until(() => partOffsets(allLogs(), p).received.length >= 3, 120_000, 20)).toBe(true);
    await first.kill();
    const before = partOffsets(allLogs(), p).received.length;
    const again = await erisPush([p], env()).done;
    expect(again.code).toBe(0);
    const { received, all } = partOffsets(allLogs(), p);
    expect(new Set(all).size).toBe(all.length);
    expect(received.length).toBeGreaterThan(before);
    expect(await validInOrigin(p)).toBe(true);
    expect(staged()).toEqual([]);
  });

  it('the post-build-hook recipe of docs/push.md, with the packed client: every path Nix builds is pushed as it finishes', async () => {
    const packed = join(s.dir, 'opt-eris', 'eris.mjs'); // npm run build:cli's file, where the recipe keeps it
    await buildPackedCli(packed);
    const hook = join(s.dir, 'eris-push-hook');
    const log = join(s.dir, 'eris-push-hook.log');
    writeFileSync(hook, [
      '#!/bin/sh',
      'set -u',
      `export ERIS_URL=${s.edge.url}`,
      `export ERIS_TOKEN=${s.token}`,
      // Nix 2.8.0 leaves OUT_PATHS empty (seen here): the recipe falls back to the derivation's outputs.
      'paths=${OUT_PATHS:-$(nix-store --query --outputs "$DRV_PATH")}',
      `${process.execPath} ${packed} push --cache default --retry-seconds 60 $paths >>${log} 2>&1 ||`,
      '  echo "eris push failed" >&2',
      'exit 0',
      '',
    ].join('\n'), { mode: 0o755 });
    const top = build('chain', `${salt}-hook`, { n: 3, kib: 1 }, ['--option', 'post-build-hook', hook]);
    for (const p of closureOf(top)) expect(await validInOrigin(p)).toBe(true);
    expect(readFileSync(log, 'utf8').match(/pushed 1 paths/g)).toHaveLength(3);
  });

  it('two runners push overlapping closures at once, one with eris push, one with nix copy: both succeed, each path imported once', async () => {
    const a = build('a', `${salt}-overlap`);
    const b = build('b', `${salt}-overlap`);
    const shared = closureOf(a).find((p) => p.endsWith('-push-shared'))!;
    expect(closureOf(b)).toContain(shared);
    const [viaEris, viaNix] = await Promise.all([
      erisPush([a], env()).done,
      runNix(['copy', '--to', s.edge.url, b, '--option', 'netrc-file', s.netrc], { timeoutMs: 120_000 }),
    ]);
    expect(viaEris.code).toBe(0);
    expect(viaNix.stderr).not.toMatch(/error/);
    expect(viaNix.code).toBe(0);
    for (const p of new Set([...closureOf(a), ...closureOf(b)])) {
      expect(await validInOrigin(p)).toBe(true);
      expect({ p, imports: events(allLogs(), 'push: imported').filter((e) => e.path === p).length }).toEqual({ p, imports: 1 });
    }
    await readBack([a, b]);
  });

  describe('small paths in batches', () => {
    it('a 101-path closure of 2 KiB paths goes in one batch request: every path valid, a fresh client copies it back', async () => {
      const paths = wideClosure(join(s.dir, 'wide-101'), 101);
      const top = paths[paths.length - 1]!;
      expect(closureOf(top)).toHaveLength(101);
      const proxy = await startRecordingProxy(s.edge.url);
      let r: Run;
      try {
        r = await erisPush(['--edge-url', proxy.url, top], { ERIS_TOKEN: s.token }).done;
      } finally {
        await proxy.close();
      }
      expect(r.stderr).toMatch(/pushed 101 paths/);
      expect(r.stderr.match(/^pushed \/nix\/store\//gm)).toHaveLength(101); // the progress lines, one a path
      expect(r.code).toBe(0);
      // One missing question and one batch: no NAR or narinfo PUTs.
      expect(proxy.seen.map((q) => `${q.method} ${q.url} ${q.status}`)).toEqual([
        `POST ${pushUrls.missing('default')} 200`,
        `POST ${pushUrls.batch('default')} 200`,
      ]);
      expect(await validCount(paths)).toBe(101);
      expect(events(allLogs(), 'push: imported').filter((e) => paths.includes(e.path as string))).toHaveLength(101);
      expect(staged()).toEqual([]);
      await readBack([top]);
    });

    it('with --batch-paths 3 a 10-path closure goes as four batches, the top\'s sent after the batches it refers to were answered', async () => {
      const paths = wideClosure(join(s.dir, 'wide-10'), 10);
      const proxy = await startRecordingProxy(s.edge.url);
      let r: Run;
      try {
        r = await erisPush(['--edge-url', proxy.url, '--batch-paths', '3', paths[9]!], { ERIS_TOKEN: s.token }).done;
      } finally {
        await proxy.close();
      }
      expect(r.stderr).toMatch(/pushed 10 paths/);
      expect(r.code).toBe(0);
      expect(proxy.seen.map((q) => `${q.method} ${q.url} ${q.status}`)).toEqual([
        `POST ${pushUrls.missing('default')} 200`,
        ...Array(4).fill(`POST ${pushUrls.batch('default')} 200`),
      ]);
      expect(await validCount(paths)).toBe(10);
    });

    it('an origin without the batch route (404): the client falls back to a NAR and a narinfo PUT per path', async () => {
      const paths = wideClosure(join(s.dir, 'wide-old'), 4);
      const proxy = await startRecordingProxy(s.edge.url, {
        answer: (q) => (q.url!.endsWith('/v1/push/batch') ? { status: 404, body: 'not found\n' } : undefined),
      });
      let r: Run;
      try {
        r = await erisPush(['--edge-url', proxy.url, paths[3]!], { ERIS_TOKEN: s.token }).done;
      } finally {
        await proxy.close();
      }
      expect(r.stderr).toMatch(/pushed 4 paths/);
      expect(r.code).toBe(0);
      const kinds = proxy.seen.map((q) => `${q.method} ${q.url.includes('/nar/') ? 'nar' : q.url.endsWith('.narinfo') ? 'narinfo' : q.url} ${q.status}`);
      expect(kinds.filter((k) => k === 'PUT nar 200')).toHaveLength(4);
      expect(kinds.filter((k) => k === 'PUT narinfo 200')).toHaveLength(4);
      expect(await validCount(paths)).toBe(4);
    });

    describe('bad batches: 4xx with one line, nothing valid, nothing staged', () => {
      let paths: string[];
      let entries: BatchEntry[];
      beforeAll(() => {
        paths = wideClosure(join(s.dir, 'wide-bad'), 4);
        entries = paths.map((p) => entryOf(p));
      });
      const post = (body: Uint8Array | Buffer, auth?: string) => req('POST', pushUrls.batch('default'), Buffer.from(body), auth);
      const refused = async (body: Uint8Array, status: number, reason: RegExp) => {
        const res = await post(body);
        const text = await res.text();
        expect({ status: res.status, text }).toEqual({ status, text: expect.stringMatching(reason) });
        expect(text.trimEnd().split('\n')).toHaveLength(1);
        expect(await validCount(paths)).toBe(0);
        expect(staged()).toEqual([]);
      };

      it('a NAR not matching its NarHash (the last entry\'s, so the others were fine): 400, none imported', async () => {
        const other = narOf(paths[1]!); // another leaf: same size, other bytes
        await refused(encodeBatch([entries[0]!, entries[1]!, { ...entries[2]!, nar: other }, entries[3]!]), 400, /^entry 3: NAR hash mismatch/);
      });

      it('a body cut short inside an entry: 400', async () => {
        const whole = encodeBatch(entries);
        await refused(whole.subarray(0, whole.length - 100), 400, /^batch body ends inside entry 4/);
      });

      it('an entry whose reference is neither in the cache nor earlier in the batch: 400, the entries before it not imported either', async () => {
        await refused(encodeBatch([entries[0]!, entries[3]!, entries[1]!, entries[2]!]), 400, /^entry 2: missing reference: .* nor earlier in the batch/);
      });

      it('a connection cut in the middle of a batch body (at the origin, as a dropped tunnel leaves it): nothing imported, nothing staged, the origin serves on', async () => {
        const whole = encodeBatch(entries);
        const url = new URL(s.origin.url);
        const sock = connect(Number(url.port), url.hostname);
        await once(sock, 'connect');
        sock.write([
          `POST ${pushUrls.batch('default')} HTTP/1.1`, `Host: ${url.host}`, `${EDGE_SECRET_HEADER}: ${s.secret}`,
          'Content-Type: application/octet-stream', `Content-Length: ${whole.length}`, '', '',
        ].join('\r\n'));
        sock.write(whole.subarray(0, whole.length - 3000)); // past the first entries, short of the last
        await new Promise((r) => setTimeout(r, 300));
        sock.destroy();
        const cut = () => events(s.origin.output(), 'push refused').some((e) => e.path === pushUrls.batch('default') && /did not complete/.test(e.reason as string));
        expect(await until(cut, 30_000, 50)).toBe(true);
        expect(await validCount(paths)).toBe(0);
        expect(staged()).toEqual([]);
        expect((await s.direct('/nix-cache-info')).status).toBe(200);
      });

      it('garbage framing: 400', async () => {
        await refused(randomBytes(5000), 400, /^batch body does not start with/);
        const lying = encodeBatch(entries.slice(0, 1));
        new DataView(lying.buffer).setUint32(13, 0xfffffff0, true); // the first entry's narinfo length
        await refused(lying, 400, /^entry 1: narinfo length/);
      });

      it('a body over the edge\'s limit: 413 naming eris push, before the body is read', async () => {
        await refused(Buffer.alloc(MAX_UPLOAD + 1), 413, /over this cache's limit/);
      });

      it('read-only, other-cache and expired tokens: 401, nothing imported', async () => {
        // (That the edge refuses before it reads the body is worker/routes/push.test.ts's: wrangler dev itself
        // gives no answer before the client has sent the whole body, whatever the Worker does.)
        const { ro, other, old: expired } = s.tokens as { ro: string; other: string; old: string };
        for (const [user, token] of [['ro', ro], ['other', other], ['old', expired]]) {
          const res = await post(encodeBatch(entries), 'Basic ' + btoa(`${user}:${token}`));
          expect({ user, status: res.status }).toEqual({ user, status: 401 });
        }
        expect(await validCount(paths)).toBe(0);
      });
    });
  });

  describe.skipIf(modernNixMissing)(`Nix ${MODERN_NIX_VERSION}`, () => {
    beforeAll(() => ensureModernNix(), 900_000);

    it('pushes with its own nix copy --to the edge, and reads back both that closure and one eris push sent in parts', async () => {
      // The paths, in a store Nix 2.26 reads (a chroot store under the temp dir, filled by this machine's Nix).
      const a = build('a', `${salt}-modern`);
      const big = build('chain', `${salt}-modern-big`, { n: 1, kib: 3000 });
      const src = join(s.dir, 'modern-src');
      execFileSync('nix', ['--extra-experimental-features', 'nix-command', 'copy', '--no-check-sigs', '--to', src, a], { env: nixEnv() });
      const up = await runModernNix(['copy', '--from', src, '--to', `${s.edge.url}?compression=zstd`, a, '--option', 'netrc-file', s.netrc], { timeoutMs: 120_000 });
      expect(up.stderr).not.toMatch(/error/);
      expect(up.code).toBe(0);
      for (const p of closureOf(a)) expect(await validInOrigin(p)).toBe(true);
      const pushed = await erisPush([big], env()).done;
      expect(pushed.code).toBe(0);

      const fresh = join(s.dir, 'modern-fresh');
      const back = await modernNixCopy({ from: s.edge.url, to: fresh, paths: [a, big], trustedKeys: s.publicKey, netrc: readNetrc, timeoutMs: 120_000 });
      expect(back.stderr).not.toMatch(/error/);
      expect(back.code).toBe(0);
      const v = await runModernNix(['store', 'verify', '--store', fresh, '-r', a, big, '--option', 'trusted-public-keys', s.publicKey], { timeoutMs: 120_000 });
      expect(v.stderr).not.toMatch(/untrusted|corrupt|error/);
      expect(v.code).toBe(0);
    });
  });

  describe('bad input: 4xx with one line, nothing valid, staging cleaned', () => {
    let x: string;
    let y: string;
    let z: string;
    let narX: Buffer;
    let narY: Buffer;
    const PART = 800_000;
    beforeAll(() => {
      // Three paths of the same NAR size (same layout, other random bytes), 2.4 MB each.
      x = build('chain', `${salt}-x`, { n: 1, kib: 2300 });
      y = build('chain', `${salt}-y`, { n: 1, kib: 2300 });
      z = build('chain', `${salt}-z`, { n: 1, kib: 2300 });
      narX = narOf(x);
      narY = narOf(y);
      expect(narX.length).toBe(narY.length);
    });
    /** An upload's start, with the narinfo that will end it as eris push gives it (the origin imports as the parts arrive). */
    const start = async (p: string) => {
      const info = infoOf(p);
      const res = await req('POST', pushUrls.uploads('default'), JSON.stringify({ storePath: p, narHash: info.narHash, narSize: info.narSize, narinfo: narInfoFor(info) }));
      expect(res.status).toBe(200);
      return (await res.json()) as UploadState;
    };
    const streamEvents = (msg: string, p: string) => events(s.origin.output(), `push: streamed import ${msg}`).filter((e) => e.storePath === p);
    const part = (id: string, offset: number, bytes: Buffer, sha = sha256Hex(bytes)) => req('PUT', pushUrls.part('default', id, offset, sha), bytes);
    const oneLine = async (res: Response) => {
      const text = await res.text();
      expect(text.trimEnd().split('\n')).toHaveLength(1);
      return text;
    };
    const uploadGone = async (id: string) => expect((await req('GET', pushUrls.upload('default', id))).status).toBe(404);

    it('a part whose bytes do not match its declared hash: 400, the upload removed', async () => {
      const u = await start(x);
      const res = await part(u.id, 0, narX.subarray(0, PART), sha256Hex(narY.subarray(0, PART)));
      expect(res.status).toBe(400);
      expect(await oneLine(res)).toMatch(/hashes to/);
      await uploadGone(u.id);
      expect(await leftInStaging()).toEqual([]);
    });

    it('parts out of order are taken; one overlapping a part held: 409 naming it, not kept; the upload completes', async () => {
      const u = await start(x);
      expect((await part(u.id, 2 * PART, narX.subarray(2 * PART))).status).toBe(200);
      const over = await part(u.id, 2 * PART - 10, narX.subarray(2 * PART - 10, 2 * PART + 10));
      expect(over.status).toBe(409);
      expect(await oneLine(over)).toMatch(new RegExp(`overlaps the part held at offset ${2 * PART}`));
      expect((await part(u.id, 0, narX.subarray(0, PART))).status).toBe(200);
      const state = (await (await req('GET', pushUrls.upload('default', u.id))).json()) as UploadState;
      expect(state).toMatchObject({ offset: PART, complete: false, received: [[0, PART], [2 * PART, narX.length - 2 * PART]] });
      // The gap filled, it is complete (then the narinfo imports it).
      const last = await part(u.id, PART, narX.subarray(PART, 2 * PART));
      expect(last.status).toBe(200);
      expect(await last.json()).toMatchObject({ complete: true, offset: narX.length });
      const ni = await req('PUT', pushUrls.narinfo('default', x.slice(11, 43)), narInfoFor(infoOf(x)));
      expect(ni.status).toBe(200);
      expect(await validInOrigin(x)).toBe(true);
      expect(staged()).toEqual([]);
    });

    it('an upload started with its narinfo is imported while its parts arrive, and becomes valid only once that narinfo is PUT', async () => {
      const narZ = narOf(z);
      const u = await start(z);
      for (let at = 0; at < narZ.length; at += PART) {
        expect((await part(u.id, at, narZ.subarray(at, at + PART))).status).toBe(200);
      }
      // The daemon took every byte but the last ones before the narinfo came: the NAR whole and checked, only its narinfo awaited.
      expect(await until(() => streamEvents('waits for its narinfo', z).length > 0, 60_000, 20)).toBe(true);
      expect(streamEvents('started', z)).toHaveLength(1);
      expect(await validInOrigin(z)).toBe(false);
      const ni = await req('PUT', pushUrls.narinfo('default', z.slice(11, 43)), narInfoFor(infoOf(z)));
      expect(ni.status).toBe(200);
      expect(await oneLine(ni)).toMatch(/imported/);
      expect(await validInOrigin(z)).toBe(true);
      expect(streamEvents('dropped', z)).toEqual([]);
      expect(staged()).toEqual([]);
      await readBack([z]);
    });

    it('a NAR assembled from parts of two uploads: 400 at the last part, the upload removed, nothing valid', async () => {
      const u = await start(y);
      await start(x); // another upload under way at the same time
      expect((await part(u.id, 0, narY.subarray(0, PART))).status).toBe(200);
      expect((await part(u.id, PART, narX.subarray(PART, 2 * PART))).status).toBe(200); // each part fine on its own
      const last = await part(u.id, 2 * PART, narY.subarray(2 * PART));
      expect(last.status).toBe(400);
      expect(await oneLine(last)).toMatch(/hashes to .* not the declared/);
      await uploadGone(u.id);
      // The daemon that was taking its parts let go of them.
      expect(await until(() => streamEvents('dropped', y).length > 0, 30_000, 20)).toBe(true);
      const ni = await req('PUT', pushUrls.narinfo('default', y.slice(11, 43)), narInfoFor(infoOf(y)));
      expect(ni.status).toBe(400);
      expect(await validInOrigin(y)).toBe(false);
      expect(staged().filter((f) => f.includes(partsNarFile(infoOf(y).narHash)))).toEqual([]);
    });

    it('a local path whose files are no longer the NAR Nix registered (a changed store file): the push fails naming it, nothing valid, the upload removed', async () => {
      const w = build('chain', `${salt}-w`, { n: 1, kib: 2300 });
      const file = join(w, 'data');
      const bytes = readFileSync(file);
      bytes[1000] = bytes[1000]! ^ 0xff; // same size, other bytes: only the whole NAR's hash tells
      chmodSync(w, 0o755);
      chmodSync(file, 0o644);
      writeFileSync(file, bytes);
      const before = new Set(staged()); // uploads other cases left under way
      try {
        const r = await erisPush(['--part-size', String(PART), w], env()).done;
        expect(r.code).toBe(1);
        expect(r.stderr).toMatch(new RegExp(`${w}: the NAR of ${w} is not the NAR the store registered \\(NarHash sha256:[0-9a-z]{52}\\): the origin refused it`));
        expect(await validInOrigin(w)).toBe(false);
        expect(await leftInStaging((f) => !before.has(f))).toEqual([]);
      } finally {
        execFileSync('nix-store', ['--delete', w], { env: nixEnv(), stdio: 'ignore' });
      }
    });

    it('a part whose bytes change on the way: the push fails with the origin\'s line for that part, not as a changed store file; nothing valid', async () => {
      const v = build('chain', `${salt}-v`, { n: 1, kib: 2300 });
      // Before the edge: the second part's body reaches it with one byte flipped (its declared hash unchanged).
      let parts = 0;
      const flipper = createServer((inReq, inRes) => {
        const corrupt = inReq.method === 'PUT' && inReq.url!.includes('/v1/push/uploads/') && ++parts === 2;
        const chunks: Buffer[] = [];
        inReq.on('data', (d: Buffer) => chunks.push(d));
        inReq.on('end', () => {
          const body = Buffer.concat(chunks);
          if (corrupt) body[10] = body[10]! ^ 0xff;
          const up = httpRequest(s.edge.url + inReq.url, { method: inReq.method, headers: { ...inReq.headers, host: new URL(s.edge.url).host } }, (upRes) => {
            inRes.writeHead(upRes.statusCode!, upRes.headers);
            upRes.pipe(inRes);
          });
          up.on('error', () => inRes.destroy());
          up.end(body);
        });
      });
      await new Promise<void>((r) => flipper.listen(0, '127.0.0.1', r));
      const before = new Set(staged());
      try {
        const url = `http://127.0.0.1:${(flipper.address() as AddressInfo).port}`;
        const r = await erisPush(['--edge-url', url, '--jobs', '1', '--part-size', String(PART), v], { ERIS_TOKEN: s.token }).done;
        expect(r.code).toBe(1);
        expect(r.stderr).toMatch(new RegExp(`${v}: part at ${PART} refused: 400 part at offset ${PART} hashes to [0-9a-f]{64}, not the declared [0-9a-f]{64}; upload removed`));
        expect(r.stderr).not.toMatch(/not the NAR the store registered/);
      } finally {
        flipper.close();
      }
      expect(await validInOrigin(v)).toBe(false);
      expect(await leftInStaging((f) => !before.has(f))).toEqual([]);
    });

    it('a narinfo naming a NAR whose parts are incomplete: 400, the upload removed, nothing valid', async () => {
      const u = await start(y);
      expect((await part(u.id, 0, narY.subarray(0, PART))).status).toBe(200);
      const ni = await req('PUT', pushUrls.narinfo('default', y.slice(11, 43)), narInfoFor(infoOf(y)));
      expect(ni.status).toBe(400);
      expect(await oneLine(ni)).toMatch(/incomplete/);
      await uploadGone(u.id);
      expect(await validInOrigin(y)).toBe(false);
      expect(await leftInStaging((f) => f.includes(u.id) || f.includes(partsNarFile(infoOf(y).narHash)))).toEqual([]);
    });

    it('read-only, other-cache and expired tokens: 401 for starts and parts (the edge reads no body)', async () => {
      const { ro, other, old: expired } = s.tokens as { ro: string; other: string; old: string };
      for (const [user, token] of [['ro', ro], ['other', other], ['old', expired]]) {
        const auth = 'Basic ' + btoa(`${user}:${token}`);
        const res = await req('POST', pushUrls.uploads('default'), '{}', auth);
        expect({ user, status: res.status }).toEqual({ user, status: 401 });
        expect((await req('PUT', pushUrls.part('default', '0'.repeat(32), 0, '0'.repeat(64)), Buffer.alloc(10), auth)).status).toBe(401);
      }
      const r = await erisPush(['--edge-url', s.edge.url, y], { ERIS_TOKEN: ro }).done;
      expect(r.code).not.toBe(0);
      expect(r.stderr).toMatch(/401/);
    });
  });
});
