import { MemoryUploadStore } from '../../src/index.js';
import { outboxRelayContract } from './outbox-relay-contract.js';
import { uploadStoreContract } from './upload-store-contract.js';

uploadStoreContract('MemoryUploadStore', async () => ({ store: new MemoryUploadStore({ allowPrivateNetworks: true }) }));

outboxRelayContract('MemoryUploadStore', async () => {
  const store = new MemoryUploadStore({ allowPrivateNetworks: true });
  return { stores: [store, store, store], cleanup: async () => undefined };
});
