import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'coverage/**', '.s3-server/**', 'media/**', 'data/**', 'test-results/**', 'test/docs/.tmp-*/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { process: 'readonly', console: 'readonly', Buffer: 'readonly', setTimeout: 'readonly', clearTimeout: 'readonly', URL: 'readonly', AbortController: 'readonly', AbortSignal: 'readonly', fetch: 'readonly', performance: 'readonly', Blob: 'readonly', setInterval: 'readonly', clearInterval: 'readonly', queueMicrotask: 'readonly', setImmediate: 'readonly' } },
    rules: {
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/consistent-type-imports': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
    },
  },
  {
    // The example portal's page runs in the browser.
    files: ['examples/express/public/**/*.js'],
    languageOptions: {
      globals: { document: 'readonly', window: 'readonly', XMLHttpRequest: 'readonly', FormData: 'readonly', fetch: 'readonly', console: 'readonly', setInterval: 'readonly', URL: 'readonly' },
    },
  },
);
