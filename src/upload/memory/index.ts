export { MemoryUploadStore, type MemoryUploadStoreOptions } from './memory-upload-store.js';
