/** Tables as the CLI prints them: aligned columns two spaces apart, one line a row, no trailing spaces. */

/**
 * `rows` (the first is the header) as aligned columns. Columns are
 * left-aligned unless `alignRight(i)` (numbers); the last column of a
 * left-aligned row is not padded.
 */
export function formatColumns(rows: string[][], o: { alignRight?: (column: number) => boolean } = {}): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  const right = o.alignRight ?? (() => false);
  const cell = (c: string, i: number, last: boolean) => (right(i) ? c.padStart(widths[i]!) : last ? c : c.padEnd(widths[i]!));
  return rows.map((r) => r.map((c, i) => cell(c, i, i === r.length - 1)).join('  ').trimEnd()).join('\n') + '\n';
}
