/**
 * Packs the client's commands (origin/cli/packed.ts: `eris push`, `eris client-config`) into one JavaScript
 * file for CI runners and post-build hooks: Node ≥ 22 runs it with no node_modules and no TypeScript to strip.
 *
 *   npm run build:cli              # writes dist/eris.mjs
 *   npm run build:cli -- OUT.mjs   # writes OUT.mjs
 */
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const ENTRY = fileURLToPath(new URL('../origin/cli/packed.ts', import.meta.url));
export const DEFAULT_OUT = fileURLToPath(new URL('../dist/eris.mjs', import.meta.url));

/** Writes the packed client to `outfile` (its directory is made); the file is executable (`#!/usr/bin/env node`). */
export async function buildPackedCli(outfile: string = DEFAULT_OUT): Promise<void> {
  await build({
    entryPoints: [ENTRY], outfile, bundle: true, platform: 'node', format: 'esm', target: 'node22',
    logLevel: 'warning', legalComments: 'none',
  });
}

if (process.argv[1] && realpathSync(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const out = process.argv[2] ?? DEFAULT_OUT;
  buildPackedCli(out).then(() => process.stdout.write(`wrote ${out}\n`), (e: unknown) => {
    process.stderr.write(`build:cli: ${e instanceof Error ? e.message.split('\n')[0] : String(e)}\n`);
    process.exit(1);
  });
}
