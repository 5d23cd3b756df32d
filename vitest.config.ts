import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    // Each file in its own process, so that RSS measurements see only their own test.
    pool: 'forks',
    testTimeout: 180_000,
    hookTimeout: 180_000,
    projects: [
      {
        extends: true,
        // Pure functions and in-process fakes: no build, no server. `npm run test:unit`.
        test: { name: 'unit', include: ['test/unit/**/*.test.ts'] },
      },
      {
        extends: true,
        // Real S3 servers, Postgres, SQLite, the example app (which imports the built dist/).
        test: {
          name: 'integration',
          include: ['test/**/*.test.ts'],
          exclude: ['test/unit/**'],
          globalSetup: ['test/setup/build-dist.ts', 'test/setup/s3-server.ts'],
        },
      },
    ],
  },
});
