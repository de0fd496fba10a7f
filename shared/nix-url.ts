/**
 * The file a request names, as Nix meant it. Store path names may hold `+ - . _ ? =`, and Nix (2.8 and
 * 2.26 alike) puts names into URLs unescaped — `log/<hash>-<name>.drv`, `realisations/<drv hash>!<output>.doi`
 * — so for a name with a `?` what a URL parser calls the query is the rest of the name: Nix 2.8 asks for
 * `/log/<hash>-a+b?c=d.drv`, which is the path `/log/<hash>-a+b` and the query `c=d.drv`. Names never hold
 * `#`, `%` or `/`, so the path, `?` and the raw query joined back, percent-decoded (a client that does
 * escape, `%3F`, means the same), are exactly the name sent. Pure: the edge and the origin read it alike.
 */

/** The URL's path and query as one string, percent-decoded (undecodable escapes are left as they are). */
export function pathAsNixMeantIt(url: string): string {
  const u = new URL(url);
  const raw = u.pathname + u.search;
  try {
    return decodeURIComponent(raw);
  } catch {
    return raw;
  }
}
