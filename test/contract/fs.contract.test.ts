import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { FileSystemStorage } from '../../src/storage/fs/index.js';
import { fetchUpload, startUploadRoute } from '../helpers/upload-route.js';
import { storageContract } from './storage-contract.js';

const UPLOAD_SECRET = 'fs-upload-secret-0123456789abcdef-0123';

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
    // The app's upload route, over real HTTP, in front of the storage.
    const route = await startUploadRoute();
    const storage = new FileSystemStorage({ location, baseUrl: route.baseUrl, uploadSecret: UPLOAD_SECRET });
    route.use(storage);
    return {
      storage,
      overwriting: new FileSystemStorage({ location, fileOverwrite: true }),
      leftovers: () => allFiles(sandbox),
      cleanup: async () => {
        await route.close();
        await rm(sandbox, { recursive: true, force: true });
      },
      sendUpload: fetchUpload,
      secrets: [UPLOAD_SECRET],
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
