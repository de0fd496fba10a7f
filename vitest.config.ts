import { availableParallelism } from 'node:os';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['shared/**/*.test.ts', 'origin/**/*.test.ts', 'worker/**/*.test.ts', 'test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 180_000,
    // Files run two at a time even on CI's 2 cores (vitest's default there is one worker, cores - 1): most of a
    // file's time is waiting on wrangler dev, Nix and timeouts, not CPU. Files are independent (own temp dirs,
    // free ports, the shared stack behind a lock: test/helpers/shared-stack.ts).
    maxWorkers: Math.max(2, availableParallelism() - 1),
    globalSetup: ['test/global-setup.ts'],
    reporters: ['default', './test/summary-reporter.ts'],
  },
});
