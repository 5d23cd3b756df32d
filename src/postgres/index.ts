export { PostgresUploadStore, type PostgresUploadStoreOptions } from './postgres-store.js';
export { OUTBOX_CHANNEL } from './listen.js';
export { migrate, quoteSchema, type PoolLike, type PooledClient, type Queryable } from './migrations.js';
export type { ClientLike } from './single-client.js';
