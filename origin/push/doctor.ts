/**
 * `eris doctor`'s push checks: is push configured, can this user stage files,
 * can it reach the store it imports into, and will that store accept what the
 * origin signs (its trusted-public-keys), or is it a trusted-user for
 * `push_trust = "no-check-sigs"`.
 */
import { execFileSync } from 'node:child_process';
import { accessSync, constants, existsSync, mkdirSync } from 'node:fs';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import type { OriginConfig } from '../config/index.ts';
import { isLocalRoot } from './import.ts';

export interface PushCheck {
  status: 'ok' | 'FAIL' | 'skip';
  what: string;
  detail: string;
}

const DAEMON_SOCKET = '/nix/var/nix/daemon-socket/socket';

const writable = (p: string) => {
  try {
    accessSync(p, constants.W_OK);
    return true;
  } catch {
    return false;
  }
};

/** `nix show-config --json` as this user sees it (the daemon's nix.conf, on a normal box). */
function nixSettings(): Record<string, { value: unknown }> | undefined {
  try {
    return JSON.parse(execFileSync('nix', ['--extra-experimental-features', 'nix-command', 'show-config', '--json'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 20_000 }));
  } catch {
    return undefined;
  }
}

export function checkPush(config: OriginConfig, publicKeys: string[] | undefined): PushCheck[] {
  const push = config.push;
  if (!push) return [{ status: 'skip', what: 'push', detail: 'off: set push_dir to accept `nix copy --to https://…` with write tokens' }];
  const out: PushCheck[] = [];
  try {
    mkdirSync(push.dir, { recursive: true, mode: 0o700 });
    out.push(writable(push.dir)
      ? { status: 'ok', what: 'push staging', detail: `${push.dir} is writable (staging up to ${push.stagingMaxBytes} bytes, abandoned files removed after ${push.stagingTtlMs / 1000} s)` }
      : { status: 'FAIL', what: 'push staging', detail: `${push.dir} is not writable by this user; chown it to the origin's user` });
  } catch (e) {
    out.push({ status: 'FAIL', what: 'push staging', detail: `cannot create ${push.dir}: ${(e as NodeJS.ErrnoException).code ?? e}` });
  }
  try {
    out.push({ status: 'ok', what: 'push nix', detail: execFileSync('nix', ['--version'], { encoding: 'utf8', timeout: 10_000 }).trim() });
  } catch {
    out.push({ status: 'FAIL', what: 'push nix', detail: 'the nix command is not on PATH; imports run `nix copy`' });
    return out;
  }

  const local = isLocalRoot(push.storeUri);
  const storeRoot = local ? push.storeUri : '/';
  const ownsStore = writable(join(storeRoot, 'nix/store')) && writable(join(storeRoot, 'nix/var/nix/db'));
  const viaDaemon = push.storeUri === 'daemon' || (push.storeUri === 'auto' && !ownsStore);
  if (viaDaemon) {
    out.push(existsSync(DAEMON_SOCKET)
      ? { status: 'ok', what: 'push store', detail: `imports go through the Nix daemon (${DAEMON_SOCKET})` }
      : { status: 'FAIL', what: 'push store', detail: `imports go through the Nix daemon, but ${DAEMON_SOCKET} does not exist: start nix-daemon` });
  } else {
    out.push(ownsStore
      ? { status: 'ok', what: 'push store', detail: `imports go straight into the store under ${storeRoot} (this user may write it)` }
      : { status: 'FAIL', what: 'push store', detail: `${storeRoot}nix/store or its DB is not writable by this user; use push_store = "daemon"` });
  }

  if (push.trust === 'signature') {
    if (local) {
      out.push({ status: 'ok', what: 'push trust', detail: `the origin passes its own key(s) to nix copy for the store under ${storeRoot}` });
    } else {
      const settings = nixSettings();
      const trusted = String((settings?.['trusted-public-keys']?.value as string[] | undefined)?.join(' ') ?? '').split(/\s+/);
      const ours = (publicKeys ?? []).filter((k) => trusted.includes(k));
      out.push(!settings
        ? { status: 'FAIL', what: 'push trust', detail: 'cannot read `nix show-config`; the store must trust the cache key' }
        : ours.length
          ? { status: 'ok', what: 'push trust', detail: `the store trusts ${ours[0]!.split(':')[0]}, so it accepts what the origin signs; the origin needs no trusted-user` }
          : { status: 'FAIL', what: 'push trust', detail: `add the cache's public key to trusted-public-keys in nix.conf (${(publicKeys ?? [])[0] ?? 'see above'}), or every import is refused` });
    }
  } else {
    const settings = nixSettings();
    const users = (settings?.['trusted-users']?.value as string[] | undefined) ?? [];
    const me = userInfo().username;
    const trusted = !viaDaemon || users.includes(me) || users.includes('*');
    out.push(trusted
      ? { status: 'ok', what: 'push trust', detail: `push_trust = "no-check-sigs" and ${viaDaemon ? `${me} is a trusted-user` : 'the origin owns the store'}` }
      : { status: 'FAIL', what: 'push trust', detail: `push_trust = "no-check-sigs" needs ${me} in trusted-users (a group there is not checked here: ${users.join(' ') || 'none'}); or use push_trust = "signature"` });
  }
  return out;
}
