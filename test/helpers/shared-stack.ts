/**
 * One stack for the whole run — `eris serve` over the fixture store (default config, a Nix-made key, a
 * read token for alice) and `wrangler dev` — for the test files that only read through it (e2e, doctor,
 * fuzz): one wrangler dev boot instead of one per file.
 *
 *   const s = useSharedStack();   // in a describe: s.get, s.direct, s.addToken, s.netrc, s.publicKey, …
 *
 * The first file that asks boots it under a lock; its processes log to files and outlive that file, so
 * later files, in any worker, reuse it; global-setup stops it when the run ends (stopSharedStack). A file
 * using it must leave it as it found it: no restarts, no changes to the store or the config, no
 * failed-auth bursts from the default client address (fuzz uses addresses of its own); tokens of its own
 * are fine. Each file still gets a temp dir of its own (`s.dir`, removed afterwards). A test that needs
 * anything else starts its own stack with useStack() (./stack.ts).
 */
import { afterAll, beforeAll, inject } from 'vitest';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { clients, later, startStack, type Stack } from './stack.ts';
import { processAlive } from '../../origin/server/process-alive.ts';

export interface SharedProc {
  url: string;
  port: number;
  output(): string;
}

export interface SharedStack extends Pick<Stack, 'root' | 'secret' | 'user' | 'token' | 'keyFile' | 'publicKeyFile' | 'publicKey' | 'netrc' | 'auth' | 'get' | 'direct' | 'addToken'> {
  /** This file's own temp dir. */
  dir: string;
  origin: SharedProc;
  edge: SharedProc & { persistTo: string };
}

/** What later files need to reuse the stack (state.json). */
interface State extends Pick<Stack, 'root' | 'secret' | 'user' | 'token' | 'keyFile' | 'publicKeyFile' | 'publicKey' | 'netrc' | 'auth'> {
  origin: { url: string; port: number; pid: number; log: string };
  edge: { url: string; port: number; pid: number; log: string; persistTo: string };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Runs `fn` holding a lock directory in `dir` (bounded wait; other workers boot nothing meanwhile). */
async function locked<T>(dir: string, fn: () => Promise<T>): Promise<T> {
  const lock = join(dir, 'lock');
  const deadline = Date.now() + 240_000;
  for (;;) {
    try {
      mkdirSync(lock);
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST' || Date.now() > deadline) throw e;
      await sleep(200);
    }
  }
  try {
    return await fn();
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
}

async function bootOrReuse(shared: string, root: string): Promise<State> {
  return locked(shared, async () => {
    const file = join(shared, 'state.json');
    if (existsSync(file)) return JSON.parse(readFileSync(file, 'utf8')) as State;
    const dir = join(shared, 'stack');
    mkdirSync(dir, { recursive: true });
    const s = await startStack({ dir, root, keyBy: 'nix', keyName: 'eris-shared-1', logDir: shared });
    const state: State = {
      root,
      secret: s.secret,
      user: s.user,
      token: s.token,
      keyFile: s.keyFile,
      publicKeyFile: s.publicKeyFile,
      publicKey: s.publicKey,
      netrc: s.netrc,
      auth: s.auth,
      origin: { url: s.origin.url, port: s.origin.port, pid: s.origin.child.pid!, log: join(shared, 'origin.log') },
      edge: { url: s.edge.url, port: s.edge.port, pid: s.edge.child.pid!, log: join(shared, 'edge.log'), persistTo: s.edge.persistTo },
    };
    writeFileSync(file, JSON.stringify(state));
    return state;
  });
}

/** The run's shared stack for the enclosing describe block (see the module comment). */
export function useSharedStack(): SharedStack {
  let stack: SharedStack | undefined;
  let own: string | undefined;
  beforeAll(async () => {
    const shared = inject('sharedStackDir');
    const fixture = inject('fixture');
    if (!fixture) throw new Error('useSharedStack needs the fixture store (Nix)');
    const st = await bootOrReuse(shared, fixture.root);
    own = mkdtempSync(join(tmpdir(), 'eris-shared-user-'));
    const proc = (p: { url: string; port: number; log: string }) => ({ url: p.url, port: p.port, output: () => readFileSync(p.log, 'utf8') });
    stack = {
      ...st,
      dir: own,
      origin: proc(st.origin),
      edge: { ...proc(st.edge), persistTo: st.edge.persistTo },
      ...clients({ edgeUrl: st.edge.url, originUrl: () => st.origin.url, secret: st.secret, auth: st.auth, persistTo: st.edge.persistTo }),
    };
  });
  afterAll(() => {
    if (own) rmSync(own, { recursive: true, force: true });
  });
  return later('the shared stack', () => stack);
}

const alive = processAlive;

/** Stops the shared stack, if a test booted it, and removes its dir (global-setup's teardown). */
export async function stopSharedStack(shared: string): Promise<void> {
  const file = join(shared, 'state.json');
  if (existsSync(file)) {
    const st = JSON.parse(readFileSync(file, 'utf8')) as State;
    for (const pid of [st.edge.pid, st.origin.pid]) {
      try {
        process.kill(-pid, 'SIGTERM'); // the whole group: wrangler starts workerd
      } catch {}
      const deadline = Date.now() + 5000;
      while (alive(pid) && Date.now() < deadline) await sleep(50);
      try {
        process.kill(-pid, 'SIGKILL');
      } catch {}
    }
  }
  rmSync(shared, { recursive: true, force: true });
}
