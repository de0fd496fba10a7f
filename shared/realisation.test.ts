import { describe, expect, it } from 'vitest';
import { parseRealisationId, realisationFingerprint, renderRealisation } from './realisation.ts';

// Written by Nix 2.8 (`nix copy --to file://` of a ca-derivations output).
const NIX_DOI = '{"dependentRealisations":{},"id":"sha256:d506f93de91013218d7cf9bdba0b2c2945b6dbfba894881806507fb9b6fb1bc1!out","outPath":"ggl3a394jgbrdmmd121780002w1cfmv7-eris-ca","signatures":[]}';

describe('realisations', () => {
  it('renders byte for byte what Nix writes, and fingerprints without the signatures', () => {
    const r = JSON.parse(NIX_DOI);
    expect(renderRealisation(r)).toBe(NIX_DOI);
    expect(realisationFingerprint(r)).toBe('{"dependentRealisations":{},"id":"sha256:d506f93de91013218d7cf9bdba0b2c2945b6dbfba894881806507fb9b6fb1bc1!out","outPath":"ggl3a394jgbrdmmd121780002w1cfmv7-eris-ca"}');
  });

  it('parses ids strictly', () => {
    expect(parseRealisationId(`sha256:${'a'.repeat(64)}!out`)).toEqual({ drvHash: `sha256:${'a'.repeat(64)}`, outputName: 'out' });
    for (const bad of ['sha256:abc!out', `sha256:${'a'.repeat(64)}`, `sha256:${'a'.repeat(64)}!../x`, `md5:${'a'.repeat(64)}!out`]) expect(parseRealisationId(bad)).toBeUndefined();
  });
});
