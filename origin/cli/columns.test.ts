import { describe, expect, it } from 'vitest';
import { formatColumns } from './columns.ts';

describe('formatColumns', () => {
  it('aligns columns two spaces apart, left by default, the last one unpadded', () => {
    expect(formatColumns([['ID', 'USER', 'SCOPES'], ['abc', 'alice', 'read,write'], ['d', 'bob', 'read']])).toBe(
      'ID   USER   SCOPES\nabc  alice  read,write\nd    bob    read\n',
    );
  });

  it('right-aligns the columns asked for and leaves no trailing spaces', () => {
    expect(formatColumns([['', 'hits', 'bytes'], ['total', '12', '1.6 GiB'], ['alice', '3', '']], { alignRight: (i) => i > 0 })).toBe(
      '       hits    bytes\ntotal    12  1.6 GiB\nalice     3\n',
    );
  });
});
