/**
 * Every name Nix allows, on every endpoint that carries one. Store path names may hold `+ - . _ ? =`, and
 * Nix puts them into URLs unescaped, so a `?` starts what a URL parser calls the query
 * (`GET /log/<hash>-a+b-c.d_e?f=g.drv`, `GET /realisations/sha256:…!a+b-c.d_e?f=g.doi`). Real Nix 2.8 and
 * 2.26 (test/helpers/modern-nix.ts), through `wrangler dev`, against paths named with every such character
 * (test/fixtures/names.nix): `nix copy` both ways, `nix store ls`, `nix log`, `nix store copy-log`, a
 * content-addressed output substituted through its realisation — and `/log/<hash>` as harmonia serves it.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { hashOf, NIX_FLAGS, nixEnv, nixMissing, runNix, type NixResult } from '../helpers/nix.ts';
import { ensureModernNix, modernNixMissing, runModernNix } from '../helpers/modern-nix.ts';
import { useStack } from '../helpers/stack.ts';

const NAMES_NIX = new URL('../fixtures/names.nix', import.meta.url).pathname;
const ODD = 'a+b-c.d_e?f=g';
const CA = ['--extra-experimental-features', 'nix-command ca-derivations'];
const LOG_DIR = '/nix/var/log/nix/drvs';

const build = (attr: string, salt: string, extra: string[] = []) =>
  execFileSync('nix-build', [NAMES_NIX, '-A', attr, '--argstr', 'salt', salt, '--no-out-link', ...extra, '--option', 'sandbox', 'false', '--option', 'substituters', ''],
    { env: nixEnv(), encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
const deriver = (p: string) => execFileSync('nix-store', ['-q', '--deriver', p], { env: nixEnv(), encoding: 'utf8' }).trim();
const hostNix = (args: string[]) => execFileSync('nix', [...NIX_FLAGS, ...args], { env: nixEnv(), stdio: 'pipe' });

/** Copies the build log of `drv` from this machine's store into the log dir of the store at `root`, as Nix keeps it. */
function copyLog(drv: string, root: string) {
  const base = drv.slice('/nix/store/'.length);
  const dir = join(LOG_DIR, base.slice(0, 2));
  const file = readdirSync(dir).find((f) => f === base.slice(2) || f === `${base.slice(2)}.bz2`);
  if (!file) throw new Error(`no build log of ${drv} in ${dir}`);
  mkdirSync(join(root, dir), { recursive: true });
  copyFileSync(join(dir, file), join(root, dir, file));
}

const clients = [
  { name: 'Nix 2.8', missing: nixMissing, run: (args: string[]) => runNix(args, { timeoutMs: 120_000 }) },
  { name: 'Nix 2.26', missing: nixMissing || modernNixMissing, run: (args: string[]) => runModernNix(args, { timeoutMs: 120_000, binds: [dirname(NAMES_NIX)] }) },
];

describe.skipIf(nixMissing)(`names with every character Nix allows (${ODD}) on every endpoint`, () => {
  let top: string;
  let dep: string;
  let topDrv: string;
  let caOdd: string;
  const s = useStack(() => ({
    keyBy: 'nix',
    keyName: 'names-1',
    root(dir) {
      const root = join(dir, 'root');
      top = build('top', dir);
      topDrv = deriver(top);
      caOdd = build('caOdd', dir, CA);
      dep = execFileSync('nix-store', ['-qR', top], { env: nixEnv(), encoding: 'utf8' }).trim().split('\n').find((p) => p.endsWith('-dep'))!;
      hostNix(['copy', '--no-check-sigs', '--to', root, top]);
      hostNix(['copy', '--no-check-sigs', '--derivation', '--to', root, topDrv]);
      copyLog(topDrv, root);
      // Both CA outputs with their realisations (realisations/<drv hash>!a+b-c.d_e?f=g.doi; Nix 2.26 asks for every output's).
      execFileSync('nix', ['copy', ...CA, '--no-check-sigs', '--to', root, '-f', NAMES_NIX, 'ca', 'caOdd', '--argstr', 'salt', dir], { env: nixEnv(), stdio: 'pipe' });
      return root;
    },
    originArgs: (dir) => ['--push-dir', join(dir, 'push'), '--state-dir', join(dir, 'state')],
    user: 'namer',
    scopes: ['read', 'write'],
  }));

  const ok = (r: NixResult) => {
    expect(r.stderr).not.toMatch(/error/i);
    expect(r.code).toBe(0);
  };

  it('the fixture names use every character', () => {
    expect(top).toMatch(/-a\+b-c\.d_e\?f=g$/);
    expect(topDrv).toMatch(/-a\+b-c\.d_e\?f=g\.drv$/);
    expect(caOdd).toMatch(/-a\+b-c\.d_e\?f=g$/);
  });

  it('serves /log/<drv hash> as harmonia does, and the full name with its ? raw or escaped', async () => {
    const base = topDrv.slice('/nix/store/'.length);
    for (const path of [`/log/${hashOf(topDrv)}`, `/log/${base}`, `/log/${base.replace('?', '%3F')}`]) {
      const res = await s.get(path);
      expect({ path, status: res.status, body: await res.text() }).toEqual({ path, status: 200, body: expect.stringContaining(`build log of ${ODD}`) });
      expect(res.headers.get('cache-control')).toBe('private, no-store');
    }
    expect((await s.get(`/log/${hashOf(top)}`)).status).toBe(404); // an output's hash has no log of its own
  });

  for (const client of clients) {
    describe.skipIf(client.missing)(client.name, () => {
      const nix = client.run;
      const dirOf = (what: string) => join(s.dir, `${client.name.replace(/\W+/g, '-')}-${what}`);
      const remote = () => ['--option', 'netrc-file', s.netrc, '--option', 'connect-timeout', '5', '--option', 'download-attempts', '1'];
      beforeAll(async () => {
        if (client.name !== 'Nix 2.8') await ensureModernNix();
      }, 900_000);

      it('nix copy --from pulls the closure, signatures checked', async () => {
        const to = dirOf('pull');
        ok(await nix(['copy', '--from', s.edge.url, '--to', to, top, ...remote(), '--option', 'trusted-public-keys', s.publicKey, '--option', 'substituters', '']));
        for (const p of [top, dep]) expect(existsSync(join(to, p))).toBe(true);
      });

      it('nix store ls lists the path (its .ls listing)', async () => {
        const r = await nix(['store', 'ls', '--store', s.edge.url, top, ...remote()]);
        ok(r);
        expect(r.stdout.split('\n')).toEqual(expect.arrayContaining(['./dep-ref', `./${ODD}.txt`]));
      });

      it('nix log gets the build log (GET /log/<hash>-a+b-c.d_e?f=g.drv)', async () => {
        const store = dirOf('log-client');
        hostNix(['copy', '--no-check-sigs', '--derivation', '--to', store, topDrv]);
        const r = await nix(['log', '--store', store, topDrv, ...remote(), '--option', 'substituters', s.edge.url]);
        ok(r);
        expect(r.stdout).toContain(`build log of ${ODD}`);
      });

      it('substitutes the content-addressed output through its realisation (GET /realisations/…!a+b-c.d_e?f=g.doi)', async () => {
        const store = dirOf('ca-client');
        const r = await nix(['build', ...CA.slice(0, 2), '--store', store, '-f', NAMES_NIX, 'caOdd', '--argstr', 'salt', s.dir, '--no-link', '--max-jobs', '0',
          ...remote(), '--option', 'substituters', s.edge.url, '--option', 'trusted-public-keys', s.publicKey, '--option', 'sandbox', 'false']);
        ok(r);
        expect(existsSync(join(store, caOdd))).toBe(true);
      });

      it('pushes a fresh path with such a name (nix copy --to) and its build log (nix store copy-log --to)', async () => {
        const fresh = build('top', `${s.dir}-push-${client.name}`);
        const freshDrv = deriver(fresh);
        // The client's own store, holding the path, its derivation and its build log.
        const store = dirOf('push-client');
        hostNix(['copy', '--no-check-sigs', '--to', store, fresh]);
        hostNix(['copy', '--no-check-sigs', '--derivation', '--to', store, freshDrv]);
        copyLog(freshDrv, store);
        const to = s.edge.url;
        ok(await nix(['copy', '--store', store, '--to', to, fresh, ...remote()]));
        ok(await nix(['store', 'copy-log', '--store', store, '--to', to, freshDrv, ...remote()]));
        expect((await s.direct(`/${hashOf(fresh)}.narinfo`)).status).toBe(200);
        // Pulled back by a fresh client, verified against the cache's key.
        const back = dirOf('push-back');
        ok(await nix(['copy', '--from', s.edge.url, '--to', back, fresh, ...remote(), '--option', 'trusted-public-keys', s.publicKey, '--option', 'substituters', '']));
        expect(existsSync(join(back, fresh))).toBe(true);
      });
    });
  }
});
