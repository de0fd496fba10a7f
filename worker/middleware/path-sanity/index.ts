/**
 * Refuses paths whose raw form hides separators or dots (`%2f`, `%2e`, `%00`,
 * backslashes, `//`, `.`/`..` segments) or that are overlong, before any
 * lookup: the auth check and the origin must see the same path.
 */
import type { MiddlewareHandler } from 'hono';
import type { EdgeEnv } from '../../types.ts';

export const MAX_PATH_LENGTH = 1024;

/** Why the raw URL's path is refused, or null when it is fine. */
export function suspiciousPath(rawUrl: string): string | null {
  const start = rawUrl.indexOf('/', rawUrl.indexOf('//') + 2);
  const end = rawUrl.search(/[?#]/);
  const raw = start < 0 ? '/' : rawUrl.slice(start, end < 0 ? undefined : end);
  if (raw.length > MAX_PATH_LENGTH) return 'URL too long';
  if (/%2f|%5c|%2e|%00|\\|\/\/|\/\.\.?(\/|$)/i.test(raw)) return 'malformed path';
  return null;
}

export function pathSanity(): MiddlewareHandler<EdgeEnv> {
  return async function pathSanityMiddleware(c, next) {
    const problem = suspiciousPath(c.req.url);
    if (problem) return c.text(problem + '\n', 400);
    await next();
  };
}
