/**
 * What to do when the store refuses what the origin imports, said once for
 * both `eris doctor` and the push that hits it.
 */

/** The store's daemon does not trust the cache key (push_trust = "signature"). */
export const untrustedKeyAdvice = (publicKey: string) =>
  `add the cache's public key to trusted-public-keys in the Nix daemon's nix.conf (${publicKey}) and restart nix-daemon, or every import is refused`;

/** push_trust = "no-check-sigs" through a daemon that does not count this user as trusted. */
export const noCheckSigsAdvice = (daemon: string) =>
  `push_trust = "no-check-sigs" needs the origin's user in trusted-users of ${daemon}; or use push_trust = "signature" with the cache key in trusted-public-keys`;
