/** A pass-through HTTP proxy that records every response status and header a client receives. */
import { createServer, request, type IncomingHttpHeaders, type Server } from 'node:http';
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

export async function startRecordingProxy(target: string): Promise<RecordingProxy> {
  const t = new URL(target);
  const seen: Recorded[] = [];
  const server: Server = createServer((req, res) => {
    const up = request({ host: t.hostname, port: t.port, method: req.method, path: req.url, headers: { ...req.headers, host: t.host } }, (upRes) => {
      seen.push({ method: req.method!, url: req.url!, status: upRes.statusCode!, headers: upRes.headers });
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
