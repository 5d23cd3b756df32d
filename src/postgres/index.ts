export { PostgresUploadStore, type PostgresUploadStoreOptions } from './postgres-store.js';
export { OUTBOX_CHANNEL } from './postgres-outbox.js';
export { migrate, quoteSchema, type PoolLike, type PooledClient, type Queryable } from './migrations.js';
