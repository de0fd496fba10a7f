import { describe, expect, it } from 'vitest';
import { pathAsNixMeantIt } from './nix-url.ts';

describe('pathAsNixMeantIt', () => {
  const h = 'w2p52lymhld18si6y0h50c7vkz8zp1np';
  it('joins the query back onto a name that held a ?, keeping + and = as sent', () => {
    // What Nix 2.8 and 2.26 send for `nix log` of a derivation named a+b-c.d_e?f=g.
    expect(pathAsNixMeantIt(`http://o/log/${h}-a+b-c.d_e?f=g.drv`)).toBe(`/log/${h}-a+b-c.d_e?f=g.drv`);
    expect(pathAsNixMeantIt(`http://o/team/log/${h}-a?b?c=d.drv`)).toBe(`/team/log/${h}-a?b?c=d.drv`);
    expect(pathAsNixMeantIt(`http://o/realisations/sha256:${'a'.repeat(64)}!x?y=z.doi`)).toBe(`/realisations/sha256:${'a'.repeat(64)}!x?y=z.doi`);
  });

  it('decodes a client that escapes, and leaves names without a query alone', () => {
    expect(pathAsNixMeantIt(`http://o/log/${h}-a%2Bb%3Fc%3Dd.drv`)).toBe(`/log/${h}-a+b?c=d.drv`);
    expect(pathAsNixMeantIt(`http://o/log/${h}-plain.drv`)).toBe(`/log/${h}-plain.drv`);
    expect(pathAsNixMeantIt('http://o/log/x%zz')).toBe('/log/x%zz');
  });
});
