/** Counts every request but /metrics in and out of the process's admission control (../../admission.ts). */
import type { MiddlewareHandler } from 'hono';
import type { OriginEnv } from '../../types.ts';

export function admissionControl(): MiddlewareHandler<OriginEnv> {
  return async (c, next) => {
    const admission = c.get('deps').admission;
    if (!admission || c.req.path === '/metrics') return next();
    const leave = admission.enterRequest();
    try {
      await next();
    } finally {
      leave();
    }
  };
}
