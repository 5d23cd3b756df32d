import { MemoryStorage } from '../../src/index.js';
import { storageContract } from './storage-contract.js';

storageContract(
  'MemoryStorage',
  async () => {
    const storage = new MemoryStorage();
    return {
      storage,
      overwriting: new MemoryStorage({ fileOverwrite: true }),
      leftovers: async () => {
        const keys: string[] = [];
        for await (const entry of storage.list()) keys.push(entry.key);
        return keys;
      },
      cleanup: async () => undefined,
    };
  },
  { keepsMetadata: true, largeStreamBytes: 6 * 1024 * 1024, leavesPendingWrites: false },
);
