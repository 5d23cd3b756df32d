import { defineConfig } from 'tsup';

export default defineConfig({
  entry: {
    index: 'src/index.ts',
    fs: 'src/storage/fs/index.ts',
    s3: 'src/storage/s3/index.ts',
    env: 'src/env/index.ts',
    postgres: 'src/postgres/index.ts',
    sqlite: 'src/sqlite/index.ts',
    outbox: 'src/outbox/index.ts',
    cli: 'src/cli/check.ts',
  },
  format: ['esm', 'cjs'],
  dts: true,
  // One copy of shared modules (errors, keys) across entry points, so that `instanceof`
  // holds between `@doorito/storage` and `@doorito/storage/fs` in CJS as well as ESM.
  splitting: true,
  sourcemap: true,
  clean: true,
  target: 'node20',
  platform: 'node',
  treeshake: true,
});
