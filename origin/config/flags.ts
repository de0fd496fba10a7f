/** The command-line flags that set config keys: a new key with a flag gets it here. */
import type { Raw } from './index.ts';

/** The flags of `eris serve` (and `eris doctor`) that set config keys. */
export const CONFIG_FLAGS = {
  config: { type: 'string' },
  bind: { type: 'string' },
  'store-root': { type: 'string' },
  'sign-key': { type: 'string', multiple: true },
  'edge-secret-file': { type: 'string' },
  priority: { type: 'string' },
  workers: { type: 'string' },
  'state-dir': { type: 'string' },
  'push-dir': { type: 'string' },
  'metrics-bind': { type: 'string' },
} as const;

/** The config fields serve's flags set (undefined: not given). */
export function configFromFlags(values: { bind?: string; 'store-root'?: string; 'sign-key'?: string[]; 'edge-secret-file'?: string; priority?: string; workers?: string; 'state-dir'?: string; 'push-dir'?: string; 'metrics-bind'?: string }): Raw {
  return {
    bind: values.bind,
    storeRoot: values['store-root'],
    signKeyPaths: values['sign-key'],
    edgeSecretFile: values['edge-secret-file'],
    priority: values.priority,
    workers: values.workers,
    stateDir: values['state-dir'],
    pushDir: values['push-dir'],
    metricsBind: values['metrics-bind'],
  };
}
