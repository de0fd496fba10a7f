import { describe, expect, it } from 'vitest';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError } from '../config/validate.ts';
import { basicAuthorization, netrcLookup, readNetrcEntry } from './netrc.ts';
import { tempDir } from '../../test/helpers/temp-dir.ts';

describe('netrc', () => {
  it('reads netrc as curl does: the machine entry, else default', () => {
    const text = 'machine other login x password y\nmachine cache.example.org\n  login alice\n  password tok\ndefault login d password dd\n';
    expect(netrcLookup(text, 'cache.example.org')).toEqual({ login: 'alice', password: 'tok' });
    expect(netrcLookup(text, 'elsewhere')).toEqual({ login: 'd', password: 'dd' });
    expect(netrcLookup('machine a login b password c', 'z')).toBeUndefined();
  });

  it('reads a --netrc file: its entry, or a ConfigError saying what is missing (undefined when optional)', () => {
    const dir = tempDir('eris-netrc-');
    const file = join(dir, 'netrc');
    writeFileSync(file, 'machine cache.example.org login alice password tok\nmachine nopass login bob\n');
    expect(readNetrcEntry(file, 'cache.example.org')).toEqual({ login: 'alice', password: 'tok' });
    expect(() => readNetrcEntry(file, 'nopass')).toThrow(new ConfigError(`--netrc: ${file} has no "machine nopass login USER password TOKEN" line`));
    expect(() => readNetrcEntry(join(dir, 'missing'), 'x')).toThrow(new ConfigError(`--netrc: cannot read ${join(dir, 'missing')}: ENOENT`));
    expect(readNetrcEntry(file, 'nopass', { optional: true })).toBeUndefined();
    expect(readNetrcEntry(join(dir, 'missing'), 'x', { optional: true })).toBeUndefined();
  });

  it('sends the entry as Nix does, HTTP Basic login:password', () => {
    expect(basicAuthorization('alice', 'tok')).toBe(`Basic ${Buffer.from('alice:tok').toString('base64')}`);
    expect(basicAuthorization(undefined, 'tok')).toBe(`Basic ${Buffer.from(':tok').toString('base64')}`);
  });
});
