/**
 * Who did what, and the operator's page, as an operator meets them: `eris
 * serve` with a state dir behind the Worker under wrangler dev, a real `nix
 * copy` with alice's token. Usage per token id matches the NarSizes Nix
 * fetched and stays after the token is revoked; the edge's request log names
 * the token by its id. Then a real headless Chromium loads /v1/admin through
 * wrangler dev with an admin token: cache rows, and chart bars whose values
 * are what `eris usage --json` says per day; a read token gets the same 401
 * as a bad one. A screenshot is taken (into docs/admin-page.png with
 * ERIS_UPDATE_SCREENSHOT=1). Neither the page,
 * its data endpoint nor any log holds a token or the edge secret.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { nixEnv, NIX_FLAGS } from '../helpers/nix.ts';
import { eris } from '../helpers/processes.ts';
import { nixCopyFrom, useStack } from '../helpers/stack.ts';
import { chromiumMissing, startChromium, type Page } from '../helpers/chromium.ts';
import { tokenDigest, tokenId } from '../../shared/contract.ts';
import { PROJECT_DIR } from '../../origin/tokens/cli.ts';

const fixture = inject('fixture');
const browserMissing = chromiumMissing && process.env.CI !== 'true';

function erisUsage(args: string[]) {
  const r = eris(['usage', '--json', ...args]);
  if (r.status !== 0) throw new Error(`eris usage: ${r.stderr}`);
  return JSON.parse(r.stdout) as {
    totals: { nars: number; narBytesSent: number; narinfoHits: number };
    tokens: { token: string | null; user: string | null; narBytesSent: number }[];
    days: { day: string; narBytesSent: number; bytesReceived: number; narinfoHits: number; narinfoMisses: number }[];
  };
}

describe.skipIf(!fixture)('who did what, and the operator\'s page', () => {
  let stateDir = '';
  let adminToken = '';
  let aliceId = '';
  let closureBytes = 0;
  const s = useStack(() => ({
    root(dir) {
      stateDir = join(dir, 'state');
      writeFileSync(join(dir, 'eris.toml'), `state_dir = "${stateDir}"\n`);
      return fixture!.root;
    },
    originArgs: (dir) => ['--config', join(dir, 'eris.toml')],
    tokens: { root: { user: 'root', scopes: ['admin'] }, bob: { user: 'bob', scopes: ['read'] } },
  }));

  beforeAll(async () => {
    adminToken = s.tokens.root!;
    aliceId = tokenId(await tokenDigest(s.token));
    const copy = await nixCopyFrom(s, { to: join(s.dir, 'client-store'), paths: [fixture!.top] });
    expect(copy.code, copy.stderr).toBe(0);
    const info = JSON.parse(execFileSync('nix', [...NIX_FLAGS, 'path-info', '--json', '--recursive', '--store', fixture!.root, fixture!.top], { env: nixEnv(), encoding: 'utf8' })) as { narSize: number }[];
    closureBytes = info.reduce((a, p) => a + p.narSize, 0);
  });

  /** `eris usage --token` once the origin has flushed (every second) what it counted. */
  async function tokenUsage(id: string) {
    const deadline = Date.now() + 15_000;
    let r = erisUsage(['--state-dir', stateDir, '--token', id]);
    while (r.totals.narBytesSent < closureBytes && Date.now() < deadline) {
      await new Promise((res) => setTimeout(res, 300));
      r = erisUsage(['--state-dir', stateDir, '--token', id]);
    }
    return r;
  }

  it('counts the token\'s NAR bytes as the NarSizes Nix fetched, by its id, and keeps them after it is revoked', async () => {
    const mine = await tokenUsage(aliceId);
    expect(mine.totals.narBytesSent).toBe(closureBytes);
    expect(mine.totals.nars).toBe(fixture!.closure.length);
    expect(mine.tokens).toEqual([expect.objectContaining({ token: aliceId, user: 'alice', narBytesSent: closureBytes })]);
    // Another token's figures are its own.
    const other = tokenId(await tokenDigest(adminToken));
    expect(erisUsage(['--state-dir', stateDir, '--token', other]).totals.narBytesSent).toBe(0);
    // The edge's request log names the token by its id.
    expect(s.edge.output()).toContain(`"user":"alice","token":"${aliceId}"`);

    const revoked = eris(['token', 'revoke', aliceId, '--persist-to', s.edge.persistTo, '--wrangler-config', join(PROJECT_DIR, 'wrangler.toml')], { timeoutMs: 120_000 });
    expect(revoked.status, revoked.stderr).toBe(0);
    expect(erisUsage(['--state-dir', stateDir, '--token', aliceId]).totals.narBytesSent).toBe(closureBytes);
    expect(eris(['usage', '--state-dir', stateDir, '--token', s.token]).stderr).toMatch(/--token: expected a token id/);
  });

  describe.skipIf(browserMissing)('in a real browser', () => {
    let page: Page;
    beforeAll(async () => {
      page = await startChromium();
    });
    afterAll(async () => page?.close());

    it('shows an admin token the caches and charts whose bars are eris usage\'s figures, and saves a screenshot', async () => {
      const basic = (user: string, token: string) => ({ Authorization: 'Basic ' + btoa(`${user}:${token}`) });
      expect(await page.open(`${s.edge.url}/v1/admin`, basic('root', adminToken))).toBe(200);
      const caches = await page.evaluate<string[]>(`[...document.querySelectorAll('#caches tr[data-cache]')].map((r) => r.dataset.cache)`);
      expect(caches).toEqual(['default']);
      const origins = await page.evaluate<string[][]>(`[...document.querySelectorAll('#origins tbody tr')].map((r) => [...r.cells].slice(0, 3).map((c) => c.textContent))`);
      expect(origins).toEqual([['origin', 'closed', 'ok']]);

      // Every bar of the default cache's charts against `eris usage --json --cache default` for the same days.
      const report = erisUsage(['--state-dir', stateDir, '--cache', 'default', '--since', '30d']);
      const bars = await page.evaluate<{ day: string; series: string; value: number }[]>(
        `[...document.querySelectorAll('section[data-cache="default"] rect[data-day]')].map((r) => ({ day: r.dataset.day, series: r.dataset.series, value: Number(r.dataset.value) }))`,
      );
      expect(bars).toHaveLength(30 * 4);
      const want = (day: string, series: string) => (report.days.find((d) => d.day === day) as Record<string, unknown> | undefined)?.[series] ?? 0;
      for (const b of bars) expect({ ...b, value: b.value }).toEqual({ ...b, value: want(b.day, b.series) });
      const today = report.days.at(-1)!;
      expect(today.narBytesSent).toBe(closureBytes);
      expect(bars.find((b) => b.day === today.day && b.series === 'narBytesSent')!.value).toBe(closureBytes);
      const aliceRow = await page.evaluate<string | null>(`document.querySelector('#tokens tr[data-token="${aliceId}"]')?.textContent ?? null`);
      expect(aliceRow).toContain('alice');

      // Readable on a phone: nothing wider than the screen but the tables that scroll.
      expect(await page.open(`${s.edge.url}/v1/admin`, basic('root', adminToken), { width: 390, height: 844, mobile: true })).toBe(200);
      expect(await page.evaluate<number>('document.documentElement.scrollWidth')).toBeLessThanOrEqual(390);
      expect(await page.open(`${s.edge.url}/v1/admin`, basic('root', adminToken))).toBe(200);
      // docs/admin-page.png is refreshed only when asked (ERIS_UPDATE_SCREENSHOT=1), so a test run leaves the tree clean.
      const shot = process.env.ERIS_UPDATE_SCREENSHOT === '1' ? join(PROJECT_DIR, 'docs/admin-page.png') : join(s.dir, 'admin-page.png');
      await page.screenshot(shot);
      expect(statSync(shot).size).toBeGreaterThan(10_000);

      // A read token, a bad token and none: the same 401.
      expect(await page.open(`${s.edge.url}/v1/admin`, basic('bob', s.tokens.bob!))).toBe(401);
      expect(await page.open(`${s.edge.url}/v1/admin`, basic('root', 'eris_not-a-token'))).toBe(401);

      // No secret anywhere: the page, its data endpoint, the logs.
      expect(await page.open(`${s.edge.url}/v1/admin`, basic('root', adminToken))).toBe(200);
      const html = await page.evaluate<string>('document.documentElement.outerHTML');
      const data = await (await s.get('/v1/admin/data', { auth: false, headers: basic('root', adminToken) })).text();
      expect(data).toContain(aliceId);
      for (const text of [html, data, s.edge.output(), s.origin.output()]) {
        for (const secret of [s.token, adminToken, s.secret]) expect(text.includes(secret)).toBe(false);
      }
    });
  });
});
