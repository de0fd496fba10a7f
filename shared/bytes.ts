/** Byte counts as people read them, in binary units: 512 B, 3.2 KiB, 12.0 MiB, 1.5 GiB. */
const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];

/** One decimal from KiB up; whole bytes below. Every report, page and progress line of eris uses this. */
export function formatBytes(n: number): string {
  let v = n;
  let i = 0;
  while (v >= 1024 && i < UNITS.length - 1) [v, i] = [v / 1024, i + 1];
  return i === 0 ? `${Math.round(n)} B` : `${v.toFixed(1)} ${UNITS[i]}`;
}
