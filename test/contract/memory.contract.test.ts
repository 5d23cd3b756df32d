import { MemoryStorage } from '../../src/index.js';
import { receiveUploadStatus } from '../helpers/upload-route.js';
import { storageContract } from './storage-contract.js';

const UPLOAD_SECRET = 'memory-upload-secret-0123456789abcdef';

storageContract(
  'MemoryStorage',
  async () => {
    const storage = new MemoryStorage({ uploadSecret: UPLOAD_SECRET });
    return {
      storage,
      overwriting: new MemoryStorage({ fileOverwrite: true }),
      leftovers: async () => {
        const keys: string[] = [];
        for await (const entry of storage.list()) keys.push(entry.key);
        return keys;
      },
      cleanup: async () => undefined,
      sendUpload: (upload, body) => receiveUploadStatus(storage, upload, body),
      secrets: [UPLOAD_SECRET],
    };
  },
  { keepsMetadata: true, largeStreamBytes: 6 * 1024 * 1024, leavesPendingWrites: false },
);
