/**
 * The Node HTTP adapter: serves a fetch handler (the Hono app) on host:port.
 * Requests Hono never sees — refused by Node's parser or by
 * @hono/node-server's URL check — also get a one-line answer marked no-store.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { getRequestListener } from '@hono/node-server';
import { NO_STORE, TEXT } from './respond.ts';
import type { FastPath } from './routes/fast-path.ts';

export interface Listening {
  server: Server;
  url: string;
  port: number;
  /** Drops open connections and stops listening. */
  close(): Promise<void>;
}

/** `fast`, if given, may answer a request first (routes/fast-path.ts); what it leaves goes to `fetch`. */
export async function listen(fetch: (req: Request) => Response | Promise<Response>, where: { host: string; port: number }, fast?: FastPath): Promise<Listening> {
  const listener = getRequestListener(fetch, {
    errorHandler: () => new Response('bad request\n', { status: 400, headers: { 'Cache-Control': NO_STORE, 'Content-Type': TEXT } }),
  });
  const server = createServer(fast
    ? (req, res) => {
        const rest = () => void (res.headersSent || listener(req, res));
        let answered;
        try {
          answered = fast(req, res);
        } catch {
          return rest();
        }
        if (answered === false) rest();
        else if (answered !== true) answered.then((yes) => void (yes || rest()), rest);
      }
    : listener);
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => {
    if (!socket.writable || (socket as Duplex & { _httpMessage?: { headersSent?: boolean } })._httpMessage?.headersSent) return void socket.destroy();
    const status = err.code === 'HPE_HEADER_OVERFLOW' ? '431 Request Header Fields Too Large' : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? '408 Request Timeout' : '400 Bad Request';
    const body = status.slice(4).toLowerCase() + '\n';
    socket.end(`HTTP/1.1 ${status}\r\nCache-Control: ${NO_STORE}\r\nContent-Type: ${TEXT}\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`);
  });
  // Slow or abandoned clients must not pile up: bounded time to send headers.
  server.headersTimeout = 20_000;
  server.requestTimeout = 0; // NAR responses may stream for a long time
  server.keepAliveTimeout = 65_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(where.port, where.host, () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  const host = where.host.includes(':') ? `[${where.host}]` : where.host;
  return {
    server,
    url: `http://${host}:${port}`,
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
