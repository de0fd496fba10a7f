/** What eris push prints: one line redrawn in place on a terminal, plain lines in a CI log. */
import { describe, expect, it } from 'vitest';
import { Writable } from 'node:stream';
import { createProgress } from './progress.ts';

function sink(tty: boolean) {
  let text = '';
  const out = Object.assign(new Writable({ write(c, _e, cb) { text += c; cb(); } }), { isTTY: tty, columns: 120 });
  return { out, text: () => text };
}

describe('push progress', () => {
  it('in a CI log: a start line, one line per path, retries and failures, no control characters', () => {
    let t = 0;
    const s = sink(false);
    const p = createProgress(s.out, () => t);
    p.start(2, 3 * 1024 * 1024, 5);
    p.bytes(1024 * 1024);
    t = 1000;
    p.pathDone('/nix/store/a', 1024 * 1024);
    p.retry('part at 0 of /nix/store/b', '502 origin unreachable', 500);
    p.failed('/nix/store/b', 'narinfo refused: 400 bad');
    p.finish();
    expect(s.text().split('\n')).toEqual([
      'pushing 2 paths (3.0 MiB); 5 already in the cache',
      'pushed /nix/store/a (1.0 MiB) [1/2]',
      'retrying part at 0 of /nix/store/b in 0.5 s: 502 origin unreachable',
      'failed /nix/store/b: narinfo refused: 400 bad',
      '',
    ]);
  });

  it('on a terminal: a bar with paths, bytes and rate redrawn in place, messages above it', () => {
    let t = 0;
    const s = sink(true);
    const p = createProgress(s.out, () => t);
    p.start(4, 4 * 1024 * 1024, 0);
    p.bytes(2 * 1024 * 1024);
    t = 2000;
    p.pathDone('/nix/store/a', 2 * 1024 * 1024);
    p.finish();
    const text = s.text();
    expect(text).toContain('\r\x1b[K');
    expect(text).not.toContain('pushed /nix/store/a');
    expect(text.trimEnd().split('\n').pop()).toMatch(/\[#{10}\.{10}\] 1\/4 paths, 2\.0 MiB\/4\.0 MiB, 1\.0 MiB\/s$/);
  });
});
