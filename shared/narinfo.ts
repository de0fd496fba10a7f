/**
 * The .narinfo text format. Nix parses it strictly: one `Key: value` per line,
 * a final newline, and a missing `Compression` means bzip2 — so we always write it.
 */
/** What Nix records of a valid path, alike in its store DB and in a narinfo (which names paths differently). */
export interface PathMetadata {
  /** Full store path. */
  storePath: string;
  /** `sha256:<nix32>`. */
  narHash: string;
  narSize: number;
  /** The references: full store paths in the DB, base names (`<hash>-<name>`) in a narinfo. */
  references: string[];
  /** The deriver, if known: a full store path in the DB, a base name in a narinfo. */
  deriver?: string;
  /** Signatures, `<key name>:<base64>`. */
  sigs: string[];
  ca?: string;
}

export interface NarInfo extends PathMetadata {
  /** NAR URL relative to the cache root. */
  url: string;
  compression: string;
  fileHash?: string;
  fileSize?: number;
}

const REQUIRED = ['StorePath', 'URL', 'NarHash', 'NarSize'] as const;

function checkValue(key: string, value: string): string {
  if (/[\n\r]/.test(value)) throw new Error(`narinfo ${key} must not contain a newline`);
  return value;
}

export function renderNarInfo(info: NarInfo): string {
  const lines = [
    `StorePath: ${checkValue('StorePath', info.storePath)}`,
    `URL: ${checkValue('URL', info.url)}`,
    `Compression: ${checkValue('Compression', info.compression)}`,
  ];
  if (info.fileHash !== undefined) lines.push(`FileHash: ${checkValue('FileHash', info.fileHash)}`);
  if (info.fileSize !== undefined) lines.push(`FileSize: ${info.fileSize}`);
  lines.push(`NarHash: ${checkValue('NarHash', info.narHash)}`);
  lines.push(`NarSize: ${info.narSize}`);
  lines.push(`References: ${info.references.map((r) => checkValue('References', r)).join(' ')}`);
  if (info.deriver) lines.push(`Deriver: ${checkValue('Deriver', info.deriver)}`);
  for (const sig of info.sigs) lines.push(`Sig: ${checkValue('Sig', sig)}`);
  if (info.ca) lines.push(`CA: ${checkValue('CA', info.ca)}`);
  return lines.join('\n') + '\n';
}

function parseSize(key: string, value: string): number {
  if (!/^\d+$/.test(value)) throw new Error(`narinfo ${key} is not a number`);
  const n = Number(value);
  if (!Number.isSafeInteger(n)) throw new Error(`narinfo ${key} is too large`);
  return n;
}

export function parseNarInfo(text: string): NarInfo {
  const fields = new Map<string, string>();
  const sigs: string[] = [];
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const sep = line.indexOf(': ');
    // `References: ` with nothing after it is legal; so is `References:` trimmed.
    const key = sep < 0 ? line.replace(/:$/, '') : line.slice(0, sep);
    const value = sep < 0 ? '' : line.slice(sep + 2);
    if (sep < 0 && !line.endsWith(':')) throw new Error(`bad narinfo line: ${JSON.stringify(line.slice(0, 80))}`);
    if (key === 'Sig') sigs.push(value);
    else fields.set(key, value);
  }
  for (const key of REQUIRED) if (!fields.has(key)) throw new Error(`narinfo lacks ${key}`);
  const refs = fields.get('References') ?? '';
  const info: NarInfo = {
    storePath: fields.get('StorePath')!,
    url: fields.get('URL')!,
    compression: fields.get('Compression') ?? 'bzip2',
    narHash: fields.get('NarHash')!,
    narSize: parseSize('NarSize', fields.get('NarSize')!),
    references: refs === '' ? [] : refs.split(' '),
    sigs,
  };
  if (fields.has('FileHash')) info.fileHash = fields.get('FileHash')!;
  if (fields.has('FileSize')) info.fileSize = parseSize('FileSize', fields.get('FileSize')!);
  if (fields.get('Deriver')) info.deriver = fields.get('Deriver')!;
  if (fields.get('CA')) info.ca = fields.get('CA')!;
  return info;
}
