/**
 * `eris push --pin NAME [--keep-revisions N] PATH`: after the push, PATH becomes the newest revision of
 * pin NAME in the cache, over the edge (shared/pins.ts), with the push's own token (write grant).
 */
import { ConfigError } from '../config/validate.ts';
import { keepRevisionsProblem, pinNameProblem, pinUrl, type PinResponse } from '../../shared/pins.ts';
import { storePathOf } from '../push/client/closure.ts';
import type { EdgeClient } from '../push/client/edge.ts';

export interface PushPin {
  name: string;
  storePath: string;
  keepRevisions?: number;
}

/** The pin a push was asked for (undefined without --pin); usage problems are ConfigErrors. */
export function pinOptions(name: string | undefined, keepRevisions: string | undefined, paths: readonly string[]): PushPin | undefined {
  if (name === undefined) {
    if (keepRevisions !== undefined) throw new ConfigError('--keep-revisions goes with --pin NAME');
    return undefined;
  }
  const problem = pinNameProblem(name);
  if (problem) throw new ConfigError(`--pin: ${problem}`);
  if (paths.length !== 1) throw new ConfigError(`--pin: give exactly one PATH to pin (got ${paths.length})`);
  const keep = keepRevisions === undefined ? undefined : Number(keepRevisions);
  const bad = keep === undefined ? undefined : keepRevisionsProblem(keep);
  if (bad) throw new ConfigError(`--${bad}`);
  return { name, storePath: storePathOf(paths[0]!), keepRevisions: keep };
}

/** Pins the pushed path; returns what to tell the user. */
export async function pinAfterPush(edge: EdgeClient, cache: string, pin: PushPin): Promise<string> {
  const { value: r } = await edge.json<PinResponse>('POST', pinUrl(cache), pin);
  const lines = [`${r.added ? 'pinned' : 'already pinned'} ${r.name} -> ${r.storePath} in cache ${cache} (revision ${r.revision})`];
  for (const p of r.removed) lines.push(`  let go of ${p} (keep-revisions ${pin.keepRevisions})`);
  return lines.join('\n') + '\n';
}
