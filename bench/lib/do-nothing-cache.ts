/**
 * A do-nothing HTTP binary cache: what a Nix client's own HTTP upload costs with a server that costs nothing
 * (issue #23's floor). Every PUT's body is drained and answered 200 (nothing is kept), every GET/HEAD of a
 * narinfo or NAR is a 404, and `nix-cache-info` is served, so `nix copy --to <url>?compression=zstd` runs its
 * whole upload (HEAD nar, PUT nar, PUT narinfo per path) and succeeds. The same paths can be pushed to it
 * again: nothing is ever "already there".
 *
 *   const floor = await startDoNothingCache();
 *   await runNix(['copy', '--to', `${floor.url}?compression=zstd`, path]);
 *   await floor.close();
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface DoNothingCache {
  /** `http://127.0.0.1:<port>` (no trailing slash, no query). */
  url: string;
  /** Requests answered so far, by method. */
  requests: Record<string, number>;
  close(): Promise<void>;
}

const CACHE_INFO = 'StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 40\n';

export async function startDoNothingCache(): Promise<DoNothingCache> {
  const requests: Record<string, number> = {};
  const server = createServer((req, res) => {
    requests[req.method!] = (requests[req.method!] ?? 0) + 1;
    req.resume();
    req.on('end', () => {
      if (req.url === '/nix-cache-info' && req.method !== 'PUT') return res.end(CACHE_INFO);
      res.statusCode = req.method === 'PUT' ? 200 : 404;
      res.end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    requests,
    close: () => new Promise<void>((r) => {
      server.close(() => r());
      server.closeAllConnections();
    }),
  };
}
