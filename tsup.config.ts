import { defineConfig, type Options } from 'tsup';

const common: Options = {
  target: 'node20',
  platform: 'node',
  // No source maps: they would point at a src/ the package does not ship.
  sourcemap: false,
  silent: true,
};

export default defineConfig([
  {
    ...common,
    entry: {
      index: 'src/index.ts',
      fs: 'src/storage/fs/index.ts',
      s3: 'src/storage/s3/index.ts',
      env: 'src/env/index.ts',
      postgres: 'src/postgres/index.ts',
      sqlite: 'src/sqlite/index.ts',
      outbox: 'src/outbox/index.ts',
    },
    format: ['esm', 'cjs'],
    dts: true,
    // One copy of shared modules (errors, keys) across entry points, so that `instanceof`
    // holds between `@doorito/storage` and `@doorito/storage/fs` in CJS as well as ESM; and
    // the S3 adapter in a chunk of its own that `createStorage()` imports only when S3 is chosen.
    splitting: true,
    clean: ['!bin/**'],
  },
  {
    // The `doorito-storage` command: an ES module with no types, in a folder of its own.
    ...common,
    entry: { 'doorito-storage': 'src/cli/check.ts' },
    outDir: 'dist/bin',
    format: ['esm'],
    dts: false,
    splitting: true,
    clean: true,
  },
]);
