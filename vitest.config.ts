import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/global-setup.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // End-to-end tests spawn the built CLI and real servers; two cores do not gain from more.
    maxWorkers: 2,
    env: { NODE_OPTIONS: '--openssl-legacy-provider' },
  },
});
