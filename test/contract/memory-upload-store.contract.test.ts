import { MemoryUploadStore } from '../../src/index.js';
import { uploadStoreContract } from './upload-store-contract.js';

uploadStoreContract('MemoryUploadStore', async () => {
  const store = new MemoryUploadStore();
  return { repository: store.repository, outbox: store.outbox, unitOfWork: store, outboxStore: store, events: () => store.events(), cleanup: async () => undefined };
});
