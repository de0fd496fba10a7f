import { describe, expect, it } from 'vitest';
import { pinOptions } from './push-pin.ts';
import { ConfigError } from '../config/validate.ts';
import { parsePinRequest } from '../../shared/pins.ts';

const p = '/nix/store/00000000000000000000000000000000-app';

describe('eris push --pin', () => {
  it('takes one PATH, a pin name and a positive --keep-revisions; usage problems are ConfigErrors', () => {
    expect(pinOptions(undefined, undefined, [p, p])).toBeUndefined();
    expect(pinOptions('main', '2', [p])).toEqual({ name: 'main', storePath: p, keepRevisions: 2 });
    expect(pinOptions('release-1.2', undefined, [p + '/bin/app'])).toEqual({ name: 'release-1.2', storePath: p, keepRevisions: undefined });
    const cases: [() => unknown, RegExp][] = [
      [() => pinOptions(undefined, '2', [p]), /^--keep-revisions goes with --pin NAME$/],
      [() => pinOptions('main', undefined, [p, p]), /^--pin: give exactly one PATH to pin \(got 2\)$/],
      [() => pinOptions('feature/x', undefined, [p]), /^--pin: "feature\/x" is not a pin name/],
      [() => pinOptions('main', '0', [p]), /^--keep-revisions: expected a whole number from 1 to 10000$/],
    ];
    for (const [fn, re] of cases) {
      expect(fn).toThrow(ConfigError);
      expect(fn).toThrow(re);
    }
  });

  it('the origin accepts only a well-formed request', () => {
    expect(parsePinRequest({ name: 'main', storePath: p, keepRevisions: 2 })).toEqual({ name: 'main', storePath: p, keepRevisions: 2 });
    expect(parsePinRequest({ name: '..', storePath: p })).toMatch(/not a pin name/);
    expect(parsePinRequest({ name: 'main', storePath: p, keepRevisions: 1.5 })).toMatch(/keep-revisions/);
    expect(parsePinRequest({ name: 'main' })).toBe('storePath: expected a store path');
  });
});
