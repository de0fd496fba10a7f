/**
 * A pass-through HTTP proxy that records every response status and header a client receives.
 * It also stands where cloudflared would (adding the edge secret on the way to the origin) and,
 * for fault tests, can take over the answer to chosen requests.
 */
import { createServer, request, type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Recorded {
  method: string;
  url: string;
  status: number;
  headers: IncomingHttpHeaders;
}

export interface RecordingProxy {
  url: string;
  seen: Recorded[];
  close(): Promise<void>;
}

export interface ProxyOptions {
  /** Headers added to every request on its way to the target (e.g. the edge secret, as cloudflared adds it). */
  headers?: Record<string, string>;
  /**
   * Called as each request arrives; a function it returns answers the client instead of the
   * target's answer being passed on (the request still reaches the target).
   */
  intercept?: (req: IncomingMessage) => ((upstream: IncomingMessage, res: ServerResponse) => void) | undefined;
  /** Called as each request arrives; an answer it returns is given by the proxy itself, the request never reaching the target. */
  answer?: (req: IncomingMessage) => { status: number; body: string } | undefined;
}

export async function startRecordingProxy(target: string, options: ProxyOptions = {}): Promise<RecordingProxy> {
  const t = new URL(target);
  const seen: Recorded[] = [];
  const server: Server = createServer((req, res) => {
    const own = options.answer?.(req);
    if (own) {
      seen.push({ method: req.method!, url: req.url!, status: own.status, headers: {} });
      req.resume();
      req.on('end', () => res.writeHead(own.status, { 'content-type': 'text/plain' }).end(own.body));
      return;
    }
    const takeOver = options.intercept?.(req);
    const headers = { ...req.headers, host: t.host, ...options.headers };
    const up = request({ host: t.hostname, port: t.port, method: req.method, path: req.url, headers }, (upRes) => {
      seen.push({ method: req.method!, url: req.url!, status: upRes.statusCode!, headers: upRes.headers });
      if (takeOver) return takeOver(upRes, res);
      res.writeHead(upRes.statusCode!, upRes.headers);
      upRes.pipe(res);
      upRes.on('error', () => res.destroy());
      upRes.on('aborted', () => res.destroy());
    });
    up.on('error', () => res.destroy());
    req.pipe(up);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    seen,
    close: () =>
      new Promise((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}
