export { SqliteUploadStore } from './sqlite-store.js';
export type { SqliteUploadStoreOptions } from './connection.js';
export { migrate } from './migrations.js';
