import { describe, expect, it } from 'vitest';
import { formatBytes } from './bytes.ts';

describe('formatBytes', () => {
  it('gives whole bytes below 1 KiB and one decimal from KiB up, in binary units', () => {
    expect(formatBytes(0)).toBe('0 B');
    expect(formatBytes(512.4)).toBe('512 B');
    expect(formatBytes(1023)).toBe('1023 B');
    expect(formatBytes(1024)).toBe('1.0 KiB');
    expect(formatBytes(3.25 * 1024)).toBe('3.3 KiB');
    expect(formatBytes(150 * 1024 ** 2)).toBe('150.0 MiB');
    expect(formatBytes(1.5 * 1024 ** 3)).toBe('1.5 GiB');
    expect(formatBytes(2048 * 1024 ** 4)).toBe('2048.0 TiB');
  });
});
