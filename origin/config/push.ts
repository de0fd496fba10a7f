/**
 * Push settings from the origin config. Push is on when `push_dir` is set.
 *
 *   push_dir = "/var/lib/eris/push"        # staging area, kept NAR files, scratch; on the store's file system ideally
 *   push_staging_max_bytes = 21474836480   # all staged uploads together; a PUT that would pass it: 503 (413 if it never fits)
 *   push_staging_ttl_seconds = 3600        # staged files of an abandoned push are removed after this
 *   push_kept_max_bytes = 10737418240      # pushed NAR files kept for read-back (oldest go first)
 *   push_store = "auto"                    # where imports go: "auto", "daemon", "unix:///path/to/socket", or a chroot store root; default: store_root
 *   push_trust = "signature"               # or "no-check-sigs" (needs trusted-users when through the daemon)
 */
import { ConfigError, int, str } from './validate.ts';
import type { PushTrust } from '../push/import.ts';

export interface PushConfig {
  dir: string;
  stagingMaxBytes: number;
  stagingTtlMs: number;
  keptMaxBytes: number;
  storeUri: string;
  trust: PushTrust;
}

export const PUSH_FILE_KEYS = {
  push_dir: 'pushDir',
  push_staging_max_bytes: 'pushStagingMaxBytes',
  push_staging_ttl_seconds: 'pushStagingTtlSeconds',
  push_kept_max_bytes: 'pushKeptMaxBytes',
  push_store: 'pushStore',
  push_trust: 'pushTrust',
} as const;

export type PushRaw = Partial<Record<(typeof PUSH_FILE_KEYS)[keyof typeof PUSH_FILE_KEYS], unknown>>;

/** The push settings, or undefined when push is off. `storeRoot` is where the origin reads the store. */
export function resolvePushConfig(raw: PushRaw, storeRoot: string): PushConfig | undefined {
  if (raw.pushDir === undefined) {
    for (const [file, field] of Object.entries(PUSH_FILE_KEYS)) {
      if (field !== 'pushDir' && raw[field] !== undefined) throw new ConfigError(`${file}: set push_dir too, or remove it (push is off without push_dir)`);
    }
    return undefined;
  }
  const dir = str('push_dir', raw.pushDir);
  if (!dir.startsWith('/')) throw new ConfigError('push_dir: expected an absolute path');
  const storeUri = raw.pushStore === undefined ? (storeRoot === '/' ? 'auto' : storeRoot) : str('push_store', raw.pushStore);
  if (storeUri !== 'auto' && storeUri !== 'daemon' && !storeUri.startsWith('/') && !/^unix:\/\/\/./.test(storeUri)) {
    throw new ConfigError('push_store: expected "auto", "daemon", "unix:///path/to/daemon-socket" or an absolute store root');
  }
  const trust = raw.pushTrust === undefined ? 'signature' : str('push_trust', raw.pushTrust);
  if (trust !== 'signature' && trust !== 'no-check-sigs') throw new ConfigError('push_trust: expected "signature" or "no-check-sigs"');
  return {
    dir,
    stagingMaxBytes: raw.pushStagingMaxBytes === undefined ? 20 * 1024 ** 3 : int('push_staging_max_bytes', raw.pushStagingMaxBytes, 1, Number.MAX_SAFE_INTEGER),
    stagingTtlMs: 1000 * (raw.pushStagingTtlSeconds === undefined ? 3600 : int('push_staging_ttl_seconds', raw.pushStagingTtlSeconds, 1, 7 * 86400)),
    keptMaxBytes: raw.pushKeptMaxBytes === undefined ? 10 * 1024 ** 3 : int('push_kept_max_bytes', raw.pushKeptMaxBytes, 0, Number.MAX_SAFE_INTEGER),
    storeUri,
    trust,
  };
}
