/** `eris serve --workers N`: one port, N processes, one /metrics, a dead worker replaced. */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateKeyPair } from '../../shared/signing.ts';
import { startOriginCli, type OriginProc } from '../../test/helpers/processes.ts';
import { until } from '../../test/helpers/faults.ts';
import { hashOf } from '../../test/helpers/nix.ts';

const fixture = inject('fixture');
const SECRET = 'cluster-test-edge-secret-0123';

function children(pid: number): number[] {
  try {
    return execFileSync('pgrep', ['-P', String(pid)], { encoding: 'utf8' }).trim().split('\n').filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

describe.skipIf(!fixture)('origin cluster', () => {
  let dir: string;
  let origin: OriginProc;
  const hash = () => hashOf(fixture!.top);
  // A fresh connection per request, so the kernel spreads them over the workers.
  const get = (path: string) => fetch(origin.url + path, { headers: { 'x-eris-edge-secret': SECRET, Connection: 'close' }, signal: AbortSignal.timeout(10_000) });

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'eris-cluster-'));
    writeFileSync(join(dir, 'k.sec'), generateKeyPair('cluster-1').secret);
    origin = await startOriginCli({ root: fixture!.root, keyFiles: [join(dir, 'k.sec')], edgeSecret: SECRET, extraArgs: ['--workers', '2'] });
  });
  afterAll(async () => {
    await origin?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('serves from two worker processes behind one port and sums their counters in /metrics', async () => {
    // Both workers listening: each says so once it is.
    await until(() => children(origin.child.pid!).length === 2 && origin.output().split('eris origin listening').length > 2, 20_000);
    expect(children(origin.child.pid!)).toHaveLength(2);
    for (let i = 0; i < 40; i++) expect((await get(`/${hash()}.narinfo`)).status).toBe(200);
    const text = await (await get('/metrics')).text();
    const m = /eris_requests_total\{route="narinfo",status="200"\} (\d+)/.exec(text);
    expect(Number(m?.[1])).toBeGreaterThanOrEqual(40);
  });

  it('replaces a worker that dies and keeps answering', async () => {
    const [victim] = children(origin.child.pid!);
    process.kill(victim!, 'SIGKILL');
    await until(() => {
      const now = children(origin.child.pid!);
      return now.length === 2 && !now.includes(victim!);
    }, 10_000);
    expect(children(origin.child.pid!)).toHaveLength(2);
    for (let i = 0; i < 10; i++) expect((await get(`/${hash()}.narinfo`)).status).toBe(200);
    expect(origin.output()).toContain('origin worker died; starting another');
  });

  it('stops every worker on SIGTERM', async () => {
    const workers = children(origin.child.pid!);
    await origin.stop();
    for (const pid of workers) expect(() => readFileSync(`/proc/${pid}/status`)).toThrow();
  });
});
