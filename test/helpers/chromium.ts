/**
 * Debian's headless Chromium driven over its DevTools protocol (Node's own
 * WebSocket): open a page with request headers of our choosing (a token),
 * evaluate expressions in it, save a screenshot. Its own temp profile (also its TMPDIR), port 0
 * (the port Chromium picked is read from DevToolsActivePort), stopped by its
 * process group.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startProcess, type Proc } from './processes.ts';

export const CHROMIUM = 'chromium';
export const chromiumMissing = spawnSync(CHROMIUM, ['--version']).error !== undefined;

export interface Page {
  /** Loads the URL with these extra request headers; resolves with the main document's status once loaded. */
  open(url: string, headers?: Record<string, string>, viewport?: { width: number; height: number; mobile?: boolean }): Promise<number>;
  /** The value of a JavaScript expression in the page (returned by value: JSON-able). */
  evaluate<T>(expression: string): Promise<T>;
  /** A PNG of the whole page. */
  screenshot(file: string): Promise<void>;
  close(): Promise<void>;
}

export async function startChromium(): Promise<Page> {
  const profile = mkdtempSync(join(tmpdir(), 'eris-chromium-'));
  const proc: Proc = startProcess(CHROMIUM, [
    '--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-extensions', '--disable-background-networking',
    '--hide-scrollbars', `--user-data-dir=${profile}`, '--remote-debugging-address=127.0.0.1', '--remote-debugging-port=0', 'about:blank',
  ], { env: { ...process.env, TMPDIR: profile } }); // its org.chromium.Chromium.* scratch dirs too, removed with the profile
  const portFile = join(profile, 'DevToolsActivePort');
  const deadline = Date.now() + 30_000;
  while (!existsSync(portFile) || !readFileSync(portFile, 'utf8').includes('\n')) {
    if (proc.child.exitCode !== null || Date.now() > deadline) throw new Error(`chromium did not start:\n${proc.output()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  const port = readFileSync(portFile, 'utf8').split('\n')[0];
  const targets = (await (await fetch(`http://127.0.0.1:${port}/json/list`)).json()) as { type: string; webSocketDebuggerUrl: string }[];
  const ws = new WebSocket(targets.find((t) => t.type === 'page')!.webSocketDebuggerUrl);
  await new Promise((resolve, reject) => {
    ws.onopen = resolve;
    ws.onerror = reject;
  });
  let nextId = 1;
  const waiting = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  const listeners: ((method: string, params: Record<string, unknown>) => void)[] = [];
  ws.onmessage = (ev) => {
    const msg = JSON.parse(String(ev.data)) as { id?: number; result?: unknown; error?: { message: string }; method?: string; params?: Record<string, unknown> };
    if (msg.id !== undefined) {
      const w = waiting.get(msg.id);
      waiting.delete(msg.id);
      if (msg.error) w?.reject(new Error(msg.error.message));
      else w?.resolve(msg.result);
    } else if (msg.method) for (const l of listeners) l(msg.method, msg.params ?? {});
  };
  const send = <T>(method: string, params: Record<string, unknown> = {}): Promise<T> =>
    new Promise<T>((resolve, reject) => {
      const id = nextId++;
      waiting.set(id, { resolve: resolve as (v: unknown) => void, reject });
      ws.send(JSON.stringify({ id, method, params }));
    });
  await send('Page.enable');
  await send('Network.enable');

  return {
    async open(url, headers = {}, viewport = { width: 1100, height: 900 }) {
      await send('Emulation.setDeviceMetricsOverride', { width: viewport.width, height: viewport.height, deviceScaleFactor: 1, mobile: viewport.mobile ?? false });
      await send('Network.setExtraHTTPHeaders', { headers });
      let status = 0;
      const loaded = new Promise<void>((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`${url} did not load in 60 s`)), 60_000);
        listeners.push((method, params) => {
          if (method === 'Network.responseReceived' && (params.type as string) === 'Document') status = (params.response as { status: number }).status;
          if (method === 'Page.loadEventFired') {
            clearTimeout(t);
            resolve();
          }
        });
      });
      await send('Page.navigate', { url });
      await loaded;
      listeners.length = 0;
      return status;
    },
    async evaluate<T>(expression: string) {
      const r = await send<{ result: { value: T }; exceptionDetails?: { text: string } }>('Runtime.evaluate', { expression, returnByValue: true });
      if (r.exceptionDetails) throw new Error(`${expression}: ${r.exceptionDetails.text}`);
      return r.result.value;
    },
    async screenshot(file) {
      const r = await send<{ data: string }>('Page.captureScreenshot', { format: 'png', captureBeyondViewport: true });
      writeFileSync(file, Buffer.from(r.data, 'base64'));
    },
    async close() {
      ws.close();
      await proc.stop();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}
