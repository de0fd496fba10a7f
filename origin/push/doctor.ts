/**
 * `eris doctor`'s push checks: is push configured, can this user stage files,
 * can it reach the store it imports into, and will that store accept what the
 * origin signs (its trusted-public-keys), or is it a trusted-user for
 * `push_trust = "no-check-sigs"`.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { userInfo } from 'node:os';
import type { OriginConfig } from '../config/index.ts';
import { ownsStore, writable } from '../store/ownership.ts';
import { daemonTarget, describeTarget } from '../nix-daemon/index.ts';
import { isLocalRoot } from './import.ts';
import { noCheckSigsAdvice, untrustedKeyAdvice } from './trust-advice.ts';
import type { Check } from '../cli/doctor/check.ts';

/** `nix show-config --json` as this user sees it (the daemon's nix.conf, on a normal box). */
function nixSettings(): Record<string, { value: unknown }> | undefined {
  try {
    return JSON.parse(execFileSync('nix', ['--extra-experimental-features', 'nix-command', 'show-config', '--json'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 20_000 }));
  } catch {
    return undefined;
  }
}

export function checkPush(config: OriginConfig, publicKeys: string[] | undefined): Check[] {
  const push = config.push;
  if (!push) return [{ status: 'skip', what: 'push', detail: 'off: set push_dir to accept `nix copy --to https://…` with write tokens' }];
  const out: Check[] = [];
  try {
    mkdirSync(push.dir, { recursive: true, mode: 0o700 });
    out.push(writable(push.dir)
      ? { status: 'ok', what: 'push staging', detail: `${push.dir} is writable (staging up to ${push.stagingMaxBytes} bytes, abandoned files removed after ${push.stagingTtlMs / 1000} s)` }
      : { status: 'FAIL', what: 'push staging', detail: `${push.dir} is not writable by this user; chown it to the origin's user` });
  } catch (e) {
    out.push({ status: 'FAIL', what: 'push staging', detail: `cannot create ${push.dir}: ${(e as NodeJS.ErrnoException).code ?? e}` });
  }
  const local = isLocalRoot(push.storeUri);
  const target = daemonTarget(push.storeUri);
  const viaDaemon = target.kind === 'socket';
  // Imports speak the worker protocol to a daemon: the box's (its socket) or a `nix-daemon --stdio` of our own.
  const program = viaDaemon ? 'nix' : 'nix-daemon';
  try {
    out.push({ status: 'ok', what: 'push nix', detail: execFileSync(program, ['--version'], { encoding: 'utf8', timeout: 10_000 }).trim() });
  } catch {
    out.push({ status: 'FAIL', what: 'push nix', detail: `${program} is not on PATH; ${viaDaemon ? 'doctor reads the store\'s settings with `nix show-config`' : 'imports run `nix-daemon --stdio`'}` });
    return out;
  }

  if (target.kind === 'socket') {
    out.push(existsSync(target.socket)
      ? { status: 'ok', what: 'push store', detail: `imports go through ${describeTarget(target)}` }
      : { status: 'FAIL', what: 'push store', detail: `imports go through the Nix daemon, but ${target.socket} does not exist: start nix-daemon` });
  } else {
    const storeRoot = target.storeRoot;
    out.push(ownsStore(storeRoot)
      ? { status: 'ok', what: 'push store', detail: `imports go through ${describeTarget(target)} (this user may write that store)` }
      : { status: 'FAIL', what: 'push store', detail: `${storeRoot.replace(/\/$/, '')}/nix/store or its DB is not writable by this user; use push_store = "daemon"` });
  }

  if (push.trust === 'signature') {
    if (local) {
      out.push({ status: 'ok', what: 'push trust', detail: `the origin gives its own key(s) to the nix-daemon it starts for the store under ${push.storeUri}` });
    } else {
      const settings = nixSettings();
      const trusted = String((settings?.['trusted-public-keys']?.value as string[] | undefined)?.join(' ') ?? '').split(/\s+/);
      const keys = publicKeys ?? [];
      const untrusted = keys.filter((k) => !trusted.includes(k));
      out.push(!settings
        ? { status: 'FAIL', what: 'push trust', detail: 'cannot read `nix show-config`; the store must trust the cache key' }
        : keys.length && !untrusted.length
          ? { status: 'ok', what: 'push trust', detail: `the store trusts ${keys.map((k) => k.split(':')[0]).join(', ')}, so it accepts what the origin signs; the origin needs no trusted-user` }
          : { status: 'FAIL', what: 'push trust', detail: untrustedKeyAdvice(untrusted.join(' ') || 'see above') });
    }
  } else {
    const settings = nixSettings();
    const users = (settings?.['trusted-users']?.value as string[] | undefined) ?? [];
    const me = userInfo().username;
    const trusted = !viaDaemon || users.includes(me) || users.includes('*');
    out.push(trusted
      ? { status: 'ok', what: 'push trust', detail: `push_trust = "no-check-sigs" and ${viaDaemon ? `${me} is a trusted-user` : 'the origin owns the store'}` }
      : { status: 'FAIL', what: 'push trust', detail: `${noCheckSigsAdvice(describeTarget(target))} (${me} is not in it; a group there is not checked here: ${users.join(' ') || 'none'})` });
  }
  return out;
}
