/**
 * Realisations of content-addressed derivation outputs (`realisations/<id>.doi`,
 * experimental in Nix): JSON with keys in the order nlohmann::json prints them
 * (sorted), and a fingerprint that is the same JSON without `signatures`.
 */
export interface Realisation {
  /** `sha256:<hex of the derivation hash modulo>!<output name>`. */
  id: string;
  /** Base name of the output path. */
  outPath: string;
  signatures: string[];
  /** Other realisations this one depends on: id → base name of their output path. */
  dependentRealisations: Record<string, string>;
}

const ID_RE = /^sha256:[0-9a-f]{64}![A-Za-z0-9+\-._?=]{1,211}$/;

export function parseRealisationId(id: string): { drvHash: string; outputName: string } | undefined {
  if (!ID_RE.test(id)) return undefined;
  const bang = id.indexOf('!');
  return { drvHash: id.slice(0, bang), outputName: id.slice(bang + 1) };
}

function sortedDeps(deps: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.keys(deps).sort().map((k) => [k, deps[k]!]));
}

/** What Nix signs for a realisation. */
export function realisationFingerprint(r: Omit<Realisation, 'signatures'>): string {
  return JSON.stringify({ dependentRealisations: sortedDeps(r.dependentRealisations), id: r.id, outPath: r.outPath });
}

export function renderRealisation(r: Realisation): string {
  return JSON.stringify({ dependentRealisations: sortedDeps(r.dependentRealisations), id: r.id, outPath: r.outPath, signatures: [...r.signatures].sort() });
}
