/**
 * Where every push bench starts (push.ts, push-probe.ts, push-trace.ts): a signing key in Nix's own format
 * and a chroot store under `dir` with a DB and one tiny path, for `eris serve --push-dir` to import into.
 */
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { NIX_FLAGS, nixEnv } from '../../test/helpers/nix.ts';

export function pushOriginStore(dir: string, keyName: string): { sec: string; root: string } {
  const env = nixEnv();
  const sec = join(dir, 'cache.sec');
  execFileSync('nix-store', ['--generate-binary-cache-key', keyName, sec, join(dir, 'cache.pub')], { env });
  const root = join(dir, 'root');
  const seedFile = join(dir, 'seed');
  writeFileSync(seedFile, 'seed\n');
  const seed = execFileSync('nix', [...NIX_FLAGS, 'store', 'add-file', seedFile], { env, encoding: 'utf8' }).trim();
  execFileSync('nix', [...NIX_FLAGS, 'copy', '--no-check-sigs', '--to', root, seed], { env });
  return { sec, root };
}
