/**
 * The example app and the package tests import the package by its name, i.e. the built
 * `dist/`: build it when it is missing or older than `src/` (scripts/build-if-stale.mjs).
 */
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export default function setup(): void {
  // For work on src/ alone while other parts do not build yet; the example and package tests then see an old dist/.
  if (process.env['DOORITO_TEST_SKIP_BUILD'] === '1') return;
  execFileSync(process.execPath, [fileURLToPath(new URL('../../scripts/build-if-stale.mjs', import.meta.url))], { stdio: 'inherit' });
}
