import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { FileSystemStorage } from '../../src/storage/fs/index.js';
import { storageContract } from './storage-contract.js';

/** Every file under `dir`, temp files included, relative to `root`. */
async function allFiles(root: string): Promise<string[]> {
  const entries = await readdir(root, { recursive: true, withFileTypes: true });
  return entries.filter((e) => !e.isDirectory()).map((e) => path.relative(root, path.join(e.parentPath, e.name)));
}

storageContract(
  'FileSystemStorage',
  async () => {
    // The storage root sits one level down, so a write that escaped it would still be seen.
    const sandbox = await mkdtemp(path.join(tmpdir(), 'doorito-fs-'));
    const location = path.join(sandbox, 'media');
    return {
      storage: new FileSystemStorage({ location }),
      overwriting: new FileSystemStorage({ location, fileOverwrite: true }),
      leftovers: () => allFiles(sandbox),
      cleanup: () => rm(sandbox, { recursive: true, force: true }),
      // A process killed mid-save leaves its temp file in the key's directory.
      strandWrite: async (key) => {
        const dir = path.join(location, ...key.split('/').slice(0, -1));
        await mkdir(dir, { recursive: true });
        await writeFile(path.join(dir, '.doorito-0123456789abcdef.tmp'), 'partial bytes');
      },
    };
  },
  { keepsMetadata: false, largeStreamBytes: 6 * 1024 * 1024, leavesPendingWrites: true },
);
