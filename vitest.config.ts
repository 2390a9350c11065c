import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // e2e suites start PostgreSQL clusters and daemons; two cores do not like many at once.
    maxWorkers: 2,
  },
});
