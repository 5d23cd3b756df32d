import type { OutboxEvent } from '../upload/model.js';
import type { OutboxEmitter, UnitOfWork, UploadRepository, UploadTransaction } from '../upload/ports.js';
import { StorageConfigError } from '../errors.js';
import { WebhookSecretBox, type SecretsKey } from '../outbox/secret-box.js';
import type { EndpointGuardOptions } from '../upload/webhook-endpoint.js';
import { listenOnClient, listenOnPool, type Listen } from './listen.js';
import { migrate, quoteSchema, type PoolLike } from './migrations.js';
import { PostgresOutbox } from './postgres-outbox.js';
import { PostgresView, TransactionConnection } from './postgres-view.js';
import { SerializedClient, type ClientLike } from './single-client.js';
import { toEvent } from './rows.js';
import { inTransaction } from './transaction.js';

/** Options of {@link PostgresUploadStore}: a pool, or one connected client. */
export type PostgresUploadStoreOptions = (
  | {
      /** A `pg.Pool` (or anything with `query` and `connect`). The host owns and ends it. */
      pool: PoolLike;
      client?: never;
    }
  | {
      /**
       * One connected `pg.Client` that the host owns and ends. The store then runs one
       * statement or transaction at a time on it, in order; a relay's LISTEN shares it too.
       */
      client: ClientLike;
      pool?: never;
    }
) & {
  /**
   * Schema of the tables (create them with `migrate(pool, { schema })` or `store.migrate()`).
   * @default 'public'
   */
  schema?: string;
  /**
   * Encrypt webhook endpoint secrets at rest (AES-256-GCM, in the `secret` and
   * `previous_secret` columns): 32 bytes, as base64 (`openssl rand -base64 32`), 64 hex digits
   * or a Buffer. The store hands secrets out decrypted. Once secrets are stored sealed, every
   * store on the same tables needs the same key. Secrets stored before a key was configured
   * stay readable as they are; rotate them to have them sealed.
   * @default undefined (secrets stored as given)
   * @example new PostgresUploadStore({ pool, secretsKey: process.env.WEBHOOK_SECRETS_KEY })
   */
  secretsKey?: SecretsKey | undefined;
} & EndpointGuardOptions;

/**
 * The upload ports on Postgres: a repository and an outbox whose event is written in the same
 * real transaction as the state change it reports, and the relay's view of that outbox.
 *
 * @example
 * const pool = new pg.Pool({ connectionString: process.env.DATABASE_URL })
 * await migrate(pool)
 * const store = new PostgresUploadStore({ pool })
 * const uploads = new UploadService({ storage, repository: store.repository, unitOfWork: store })
 * const relay = new OutboxRelay({ store })
 *
 * @example
 * // One connection instead of a pool
 * const client = new pg.Client({ connectionString: process.env.DATABASE_URL })
 * await client.connect()
 * const store = new PostgresUploadStore({ client })
 * await store.migrate()
 */
export class PostgresUploadStore extends PostgresOutbox implements UnitOfWork {
  readonly #pool: PoolLike;
  readonly #schema: string;
  readonly #schemaName: string;
  /** The repository outside any transaction (each statement commits on its own). */
  readonly repository: UploadRepository;
  /** The emitter outside any transaction. */
  readonly outbox: OutboxEmitter;

  constructor(options: PostgresUploadStoreOptions) {
    const schemaName = options.schema ?? 'public';
    const schema = quoteSchema(schemaName);
    let pool: PoolLike;
    let listen: Listen;
    if (options.pool !== undefined) {
      pool = options.pool;
      listen = listenOnPool(pool);
    } else if (options.client !== undefined && typeof options.client.query === 'function') {
      const serialized = new SerializedClient(options.client);
      pool = serialized;
      listen = listenOnClient(serialized);
    } else {
      throw new StorageConfigError('PostgresUploadStore needs a `pool` (a pg.Pool) or a `client` (a connected pg.Client).', { option: 'pool' });
    }
    // Checked here, so a bad key fails at construction rather than at the first endpoint.
    super(pool, schema, schemaName, listen, new WebhookSecretBox(options.secretsKey), options);
    this.#pool = pool;
    this.#schema = schema;
    this.#schemaName = schemaName;
    const view = new PostgresView(this.#pool, this.#schema, this.#schemaName);
    this.repository = view;
    this.outbox = view;
  }

  /** Create or update the tables in this store's schema ({@link migrate} on its pool or client). */
  migrate(): Promise<{ applied: number }> {
    return migrate(this.#pool, { schema: this.#schemaName });
  }

  transaction<T>(fn: (tx: UploadTransaction) => Promise<T>): Promise<T> {
    return inTransaction(this.#pool, (client) => {
      const view = new PostgresView(new TransactionConnection(client), this.#schema, this.#schemaName);
      return fn({ repository: view, outbox: view });
    });
  }

  /** Every event in the outbox, oldest first. */
  async events(): Promise<OutboxEvent[]> {
    const { rows } = await this.#pool.query(`SELECT * FROM ${this.#schema}.outbox_event ORDER BY created_at, id`);
    return rows.map(toEvent);
  }
}
