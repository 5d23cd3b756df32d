export { PostgresUploadStore, OUTBOX_CHANNEL, type PostgresUploadStoreOptions } from './postgres-store.js';
export { migrate, quoteSchema, type PoolLike, type Queryable } from './migrations.js';
