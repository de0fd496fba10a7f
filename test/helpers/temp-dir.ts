/**
 * A temp dir that goes away by itself:
 *
 *   const dir = tempDir('eris-parts-');   // in a test: removed when it ends (passed or failed);
 *                                          // in a describe block or at file level: after the block / file
 *
 * So a run leaves nothing behind in $TMPDIR (CI runs the suite many times on one machine).
 */
import { afterAll, onTestFinished } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export function tempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const remove = () => rmSync(dir, { recursive: true, force: true });
  try {
    onTestFinished(remove);
  } catch {
    afterAll(remove); // not inside a test: at the end of the enclosing describe block, or of the file
  }
  return dir;
}
