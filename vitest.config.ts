import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/setup/build-dist.ts', 'test/setup/s3-server.ts'],
    // Each file in its own process, so that RSS measurements see only their own test.
    pool: 'forks',
    testTimeout: 180_000,
    hookTimeout: 180_000,
    reporters: process.env.CI ? ['default'] : ['default'],
  },
});
