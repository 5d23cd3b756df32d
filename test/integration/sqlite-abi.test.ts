/**
 * better-sqlite3's native module built for one Node version, loaded by another: the store says
 * so and names the fix, instead of blaming the database file. Real binaries, no mock: a second
 * Node (DOORITO_TEST_OTHER_NODE, a different major than the one node_modules was built with)
 * opens a store in a child process. `.ci/run` sets it on every Node version it tests.
 */
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const ROOT = path.resolve(import.meta.dirname, '../..');
const run = promisify(execFile);
const otherNode = process.env.DOORITO_TEST_OTHER_NODE;

if (otherNode === undefined && process.env.CI) throw new Error('CI must set DOORITO_TEST_OTHER_NODE (a Node binary of another major version)');
if (otherNode === undefined) console.warn('[sqlite-abi] DOORITO_TEST_OTHER_NODE is not set: the ABI mismatch test is skipped');

const OPEN = `
  import('@doorito/storage/sqlite').then(({ SqliteUploadStore }) => {
    try {
      new SqliteUploadStore({ database: ':memory:' }).close();
      console.log(JSON.stringify({ opened: true }));
    } catch (error) {
      console.log(JSON.stringify({ name: error.name, code: error.code, packages: error.packages, fix: error.fix, message: error.message, cause: String(error.cause) }));
    }
  });
`;

describe.skipIf(otherNode === undefined)('[sqlite] better-sqlite3 built for another Node version', () => {
  it('throws StorageDependencyError naming `npm rebuild better-sqlite3`', async () => {
    const { stdout } = await run(otherNode as string, ['-e', OPEN], { cwd: ROOT, env: { ...process.env, NODE_NO_WARNINGS: '1' } });
    const result = JSON.parse(stdout.trim()) as Record<string, unknown>;
    // Both binaries loading the same native module would mean the check proves nothing.
    expect(result['opened'], `${otherNode} loaded the module built for ${process.version}: pick a Node of another major`).toBeUndefined();
    expect(result).toMatchObject({ name: 'StorageDependencyError', code: 'E_DEPENDENCY', packages: ['better-sqlite3'], fix: 'npm rebuild better-sqlite3' });
    expect(result['message']).toMatch(/^better-sqlite3's native module was built for another Node version \(it was built for NODE_MODULE_VERSION \d+; Node v\d+\.\d+\.\d+ needs \d+\): rebuild better-sqlite3 for this Node version\. Fix: npm rebuild better-sqlite3$/u);
    expect(result['cause']).toContain('NODE_MODULE_VERSION');
  });
});
