/** `/log/<drv>`: the build log of a derivation from the store's log directory, decompressed. */
import type { Context } from 'hono';
import { spawn } from 'node:child_process';
import { createReadStream } from 'node:fs';
import { Readable } from 'node:stream';
import type { OriginEnv } from '../types.ts';
import { badRequest, notFound } from '../errors.ts';
import { isStorePathBaseName } from '../../shared/store-path.ts';
import { NO_STORE, TEXT } from '../respond.ts';

export function getBuildLog(c: Context<OriginEnv>) {
  const drv = c.req.param('drv') ?? '';
  if (!drv.endsWith('.drv') || !isStorePathBaseName(drv)) throw badRequest('malformed derivation name: expected <hash>-<name>.drv');
  const log = c.get('deps').store.buildLog(drv);
  if (!log) throw notFound('no build log for that derivation');
  const headers = { 'Content-Type': TEXT, 'Cache-Control': NO_STORE };
  c.get('deps').metrics.request(c.req.routePath, 200);
  if (c.req.method === 'HEAD') return c.body(null, 200, headers);
  let stream: Readable;
  if (log.bzip2) {
    // Nix keeps logs bzip2-compressed; Node has no bzip2 codec, the bzip2 program does.
    const child = spawn('bzip2', ['-dc', log.path], { stdio: ['ignore', 'pipe', 'ignore'] });
    stream = child.stdout;
    child.once('exit', (code) => {
      if (code !== 0) stream.destroy(new Error(`bzip2 exited with ${code}`));
    });
    stream.once('close', () => child.exitCode === null && child.kill());
  } else {
    stream = createReadStream(log.path);
  }
  return new Response(Readable.toWeb(stream) as ReadableStream, { status: 200, headers });
}
