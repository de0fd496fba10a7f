/** The admission middleware in an app: requests count in and out; past the limit a 503 with Retry-After; /metrics always answers. */
import { describe, expect, it } from 'vitest';
import { Hono } from 'hono';
import type { OriginDeps, OriginEnv } from '../../types.ts';
import { createAdmission } from '../../admission.ts';
import { Metrics } from '../../metrics.ts';
import { onError } from '../../errors.ts';
import { silentLogger } from '../../log.ts';
import { admissionControl } from './index.ts';

function app() {
  const admission = createAdmission({ maxPendingRequests: 1, maxNarStreams: 1 }, new Metrics());
  let release = () => {};
  const held = new Promise<void>((r) => (release = r));
  const a = new Hono<OriginEnv>();
  a.onError(onError);
  a.use(async (c, next) => {
    c.set('deps', { admission, log: silentLogger } as unknown as OriginDeps);
    await next();
  });
  a.use(admissionControl());
  a.get('/slow', async (c) => {
    await held;
    return c.text('slow done');
  });
  a.get('/fast', (c) => c.text('fast'));
  a.get('/metrics', (c) => c.text('metrics'));
  return { a, admission, release };
}

describe('admissionControl', () => {
  it('refuses a request past the limit with 503 + Retry-After, and admits again once one has left', async () => {
    const { a, admission, release } = app();
    const slow = a.request('/slow');
    await expect.poll(() => admission.pendingRequests).toBe(1);
    const refused = await a.request('/fast');
    expect(refused.status).toBe(503);
    expect(refused.headers.get('retry-after')).toBe('1');
    expect(await refused.text()).toBe('origin busy: too many requests in progress, retry\n');
    // /metrics is never refused (Prometheus must see a busy origin).
    expect((await a.request('/metrics')).status).toBe(200);
    release();
    expect(await (await slow).text()).toBe('slow done');
    expect(admission.pendingRequests).toBe(0);
    expect(await (await a.request('/fast')).text()).toBe('fast');
  });

  it('counts a request out when its handler throws', async () => {
    const { a, admission } = app();
    a.get('/boom', () => {
      throw new Error('boom');
    });
    expect((await a.request('/boom')).status).toBe(500);
    expect(admission.pendingRequests).toBe(0);
  });
});
