/**
 * docs/deployment.md, "Try several origins on one machine", followed word for
 * word: its shell blocks, in order, in one bash, at the root of a checkout (a
 * temp directory linking this one's code and node_modules, with its own copies
 * of the three small files the example adds to the store), on free ports
 * instead of the documented 8787 and 8801–8803. Real Nix, three real `eris
 * serve`, the pasted wrangler.toml + .dev.vars under `wrangler dev`, a token
 * written with --wrangler-config, a client set up only from `eris
 * client-config`'s output, and the 503 with a box down.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PROJECT_DIR, wranglerEnv } from '../../origin/tokens/cli.ts';
import { nixEnv, nixMissing } from '../helpers/nix.ts';
import { freePort } from '../helpers/processes.ts';
import { until } from '../helpers/faults.ts';

const GUIDE = join(PROJECT_DIR, 'docs/deployment.md');
const SECTION = '### Try several origins on one machine';

/** The ```sh blocks of the section, in order. */
export function guideBlocks(markdown: string): string[] {
  const start = markdown.indexOf(SECTION);
  if (start < 0) throw new Error(`${SECTION} not found in docs/deployment.md`);
  const rest = markdown.slice(start + SECTION.length);
  const end = rest.search(/^#{1,3} /m);
  const section = end < 0 ? rest : rest.slice(0, end);
  return [...section.matchAll(/^```sh\n([\s\S]*?)^```$/gm)].map((m) => m[1]!);
}

/** Processes of session `sid` (from /proc/<pid>/stat: the fields after the command's closing parenthesis). */
function sessionPids(sid: number): number[] {
  return readdirSync('/proc').filter((n) => /^\d+$/.test(n)).flatMap((n) => {
    try {
      const stat = readFileSync(`/proc/${n}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      return Number(fields[3]) === sid && fields[0] !== 'Z' ? [Number(n)] : [];
    } catch {
      return [];
    }
  });
}

function killSession(sid: number) {
  for (const pid of sessionPids(sid)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {}
  }
}

describe.skipIf(nixMissing)('docs/deployment.md: several origins on one machine, as written', () => {
  const dir = mkdtempSync(join(tmpdir(), 'eris-guide-'));
  let sid: number | undefined;

  afterAll(() => {
    // The blocks end by stopping what they started; whatever is left (a failure half-way) is in bash's session.
    if (sid) killSession(sid);
    rmSync(dir, { recursive: true, force: true });
  });

  it('serves one path from each of three boxes to a client configured from eris client-config alone, and answers 503 naming a stopped box', async () => {
    const blocks = guideBlocks(readFileSync(GUIDE, 'utf8'));
    expect(blocks.length).toBeGreaterThanOrEqual(5);
    // A checkout: the code and node_modules linked, the files the example stores copied.
    const checkout = join(dir, 'eris');
    mkdirSync(checkout);
    for (const name of ['origin', 'worker', 'shared', 'node_modules']) symlinkSync(join(PROJECT_DIR, name), join(checkout, name));
    for (const name of ['README.md', 'package.json', 'wrangler.toml', 'tsconfig.json']) copyFileSync(join(PROJECT_DIR, name), join(checkout, name));

    const ports = { 8787: await freePort(), 8801: await freePort(), 8802: await freePort(), 8803: await freePort() };
    let script = blocks.join('\n');
    for (const [documented, free] of Object.entries(ports)) {
      expect(script).toContain(documented);
      script = script.replaceAll(documented, String(free));
    }
    const cache = mkdtempSync(join(dir, 'xdg-'));
    const env = { ...wranglerEnv(), ...nixEnv({ XDG_CACHE_HOME: cache }), NIX_CONFIG: '' };
    // -m: job control, as in the terminal the blocks are pasted into (`kill %2` stops that job's process group).
    // detached: a session of its own, so everything the blocks start can be found and stopped afterwards.
    const run = spawn('bash', ['-m', '-e', '-c', script], { cwd: checkout, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    sid = run.pid;
    let out = '';
    run.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    run.stderr.setEncoding('utf8').on('data', (d: string) => (out += d));
    const code = await new Promise<number | null>((r) => run.once('close', r));
    const files = join(checkout, '.eris-multi');
    const log = (name: string) => (existsSync(join(files, name)) ? readFileSync(join(files, name), 'utf8') : '(none)');
    const why = `${out}\n--- edge.log\n${log('edge.log').slice(-4000)}\n--- box2.log\n${log('box2.log').slice(-2000)}`;
    expect(code, why).toBe(0);
    // The last block stopped all it started (give them a moment to exit).
    await until(() => sessionPids(sid!).length === 0, 30_000, 250);
    const left = sessionPids(sid!).map((pid) => `${pid} ${readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ').slice(0, 160)}`);
    expect(left).toEqual([]);

    // The client's nix.conf holds every box's key, in the order of ORIGINS, and nothing else made the copy work.
    const keys = [1, 2, 3].map((i) => readFileSync(join(files, `box${i}.pub`), 'utf8').trim());
    expect(readFileSync(join(files, 'client/nix.conf'), 'utf8')).toContain(`extra-trusted-public-keys = ${keys.join(' ')}\n`);
    const stored = (root: string) => readdirSync(join(root, 'nix/store')).filter((n) => !n.startsWith('.'));
    const held = [1, 2, 3].map((i) => stored(join(files, `store${i}`)));
    for (const h of held) expect(h).toHaveLength(1);
    expect(stored(join(files, 'copy')).sort()).toEqual(held.flat().sort());
    // Each box sent its own NAR.
    for (const i of [1, 2, 3]) expect(log(`box${i}.log`)).toContain(held[i - 1]![0]!.slice(0, 32));
    // With box2 stopped: 503, Retry-After and the missing box named, in the transcript and the edge's log.
    expect(out).toMatch(/^HTTP\/1\.1 503 /m);
    expect(out).toMatch(/^retry-after: 5\r?$/im);
    expect(out).toMatch(/^x-eris-missing-origins: box2\r?$/im);
    expect(out).toMatch(/"path":"\/v1\/public-key","status":503/);
  }, 600_000);
});
