// Wiring of the example portal: storage, store, UploadService, relay and the demo webhook
// endpoint, all from the environment. The HTTP routes live in routes.mjs.
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import {
  UploadService,
  createStorage,
  describeStorageConfig,
  loadStorageConfig,
  loadUploadSettingsFromEnv,
} from '@doorito/storage';
import { OutboxRelay, generateWebhookSecret } from '@doorito/storage/outbox';
import { createDemoReceiver } from './demo-webhook.mjs';
import { createApp } from './routes.mjs';

/** The database URL as it may be logged: no password. */
function redactDatabaseUrl(url) {
  try {
    const parsed = new URL(url);
    if (parsed.password !== '') parsed.password = '(redacted)';
    return parsed.toString();
  } catch {
    return '(unparsable URL)';
  }
}

/**
 * One log line per delivery attempt, e.g.
 * `[relay] file.stored 0197… → 0197… http://127.0.0.1:3000/webhooks/demo delivered (HTTP 204)`.
 * `result.url` is the endpoint's origin and path: never its query (it may hold a token).
 */
function relayLogLine({ delivery, outcome, result, nextAttemptAt, errorMessage, disabledEndpoint }) {
  const notes = [result === undefined ? (errorMessage ?? 'not sent') : result.status === undefined ? result.error : `HTTP ${result.status}`];
  if (nextAttemptAt !== undefined) notes.push(`retry at ${nextAttemptAt.toISOString()}`);
  if (disabledEndpoint !== undefined) notes.push(`endpoint disabled: ${disabledEndpoint.reason}`);
  const endpoint = result === undefined ? delivery.endpointId : `${delivery.endpointId} ${result.url}`;
  return `[relay] ${delivery.eventType} ${delivery.eventId} → ${endpoint} ${outcome} (${notes.join('; ')})`;
}

// allowPrivateNetworks, on the store (which checks an endpoint when it is registered) and on the
// relay (which checks the address it connects to): the demo receiver is this very app, on
// loopback (`internalUrl`), and the destination guard refuses loopback and private addresses
// otherwise. Leave it off where users register endpoint URLs of their own.
// WEBHOOK_SECRETS_KEY (32 bytes, base64: `openssl rand -base64 32`), when set, keeps endpoint
// secrets encrypted in the database.
async function openStore(env) {
  if (env.DATABASE_URL) {
    const { default: pg } = await import('pg');
    const { PostgresUploadStore, migrate } = await import('@doorito/storage/postgres');
    const schema = env.DATABASE_SCHEMA || 'public';
    const pool = new pg.Pool({ connectionString: env.DATABASE_URL, max: 10 });
    // An idle client that loses its connection must not crash the process.
    pool.on('error', (error) => console.error(`[portal] postgres pool: ${error.message}`));
    await migrate(pool, { schema });
    return {
      store: new PostgresUploadStore({ pool, schema, allowPrivateNetworks: true, secretsKey: env.WEBHOOK_SECRETS_KEY || undefined }),
      describe: { kind: 'postgres', url: redactDatabaseUrl(env.DATABASE_URL), schema },
      close: () => pool.end(),
    };
  }
  const { SqliteUploadStore } = await import('@doorito/storage/sqlite');
  const file = path.resolve(env.SQLITE_PATH || './data/doorito.sqlite3');
  mkdirSync(path.dirname(file), { recursive: true });
  const store = new SqliteUploadStore({ database: file, allowPrivateNetworks: true, secretsKey: env.WEBHOOK_SECRETS_KEY || undefined });
  return { store, describe: { kind: 'sqlite', file }, close: () => store.close() };
}

/**
 * Build the portal. `publicUrl` is where browsers and webhook receivers reach this server
 * (local files are served under `${publicUrl}/media/`); `internalUrl` is where the in-process
 * relay reaches the demo receiver.
 */
export async function openPortal({ env = process.env, publicUrl, internalUrl = publicUrl }) {
  const storageEnv = { ...env, MEDIA_URL: env.MEDIA_URL || `${publicUrl}/media/` };
  const storageConfig = loadStorageConfig(storageEnv);
  const storage = await createStorage(storageConfig);
  const settings = loadUploadSettingsFromEnv(env);
  const database = await openStore(env);
  const { store } = database;
  const uploads = new UploadService({ storage, repository: store.repository, unitOfWork: store, ...settings });

  const relay = new OutboxRelay({
    store,
    // Needed to reach the demo receiver: this very app, on loopback (see openStore).
    allowPrivateNetworks: true,
    pollIntervalMs: Number(env.RELAY_POLL_INTERVAL_MS || 2000),
    onDelivery: (report) => console.log(relayLogLine(report)),
    onError: (error) => console.error(`[relay] ${error instanceof Error ? error.message : String(error)}`),
  });

  // The demo endpoint: the relay POSTs every event to this very app, which verifies it.
  const demoSecret = env.WEBHOOK_DEMO_SECRET || generateWebhookSecret();
  const demoUrl = `${internalUrl}/webhooks/demo`;
  const demo = createDemoReceiver({ secret: demoSecret });
  if (env.WEBHOOK_DEMO !== 'off') {
    // One demo endpoint per URL: the secret may be new since the last start.
    for (const endpoint of await store.listWebhookEndpoints()) {
      if (endpoint.url === demoUrl) await store.deleteWebhookEndpoint(endpoint.id);
    }
    await store.createWebhookEndpoint({ url: demoUrl, secret: demoSecret });
  }

  // Where browsers send direct uploads: the origin of a presigned URL (signing is local, no request).
  const uploadOrigin =
    storage.multipartUploads === undefined ? undefined : new URL((await storage.presignUpload('csp-probe', { contentType: 'text/plain', size: 0 })).url).origin;
  const app = createApp({
    uploads,
    storage,
    store,
    demo,
    settings,
    mediaServed: storageConfig.backend === 'filesystem',
    uploadOrigin,
  });

  const sweepMs = Number(env.SWEEP_INTERVAL_SECONDS || 300) * 1000;
  const sweep = async () => {
    try {
      const cleaned = await uploads.cleanupExpiredUploadFiles();
      const notified = await uploads.notifyExpiringFiles();
      const pruned = await relay.cleanupDeliveredEvents();
      // What crashes and outages left: interrupted uploads, pending writes, orphan objects.
      const repaired = await uploads.reconcile();
      const fixes = repaired.interruptedUploads + repaired.pendingWrites + repaired.orphanObjects + repaired.missingObjects;
      if (cleaned.deleted + notified.notified + pruned + fixes > 0) {
        console.log(
          `[sweep] deleted ${cleaned.deleted} expired files, notified ${notified.notified} expiring, pruned ${pruned} delivered events; ` +
            `reconcile: ${repaired.interruptedUploads} interrupted, ${repaired.pendingWrites} pending writes, ${repaired.orphanObjects} orphans, ${repaired.missingObjects} missing`,
        );
      }
      // Objects the storage would not delete: kept, and tried again on the next sweep.
      for (const { key, error } of [...cleaned.failures, ...repaired.failures]) {
        console.error(`[sweep] could not delete ${key}: ${error.message}`);
      }
    } catch (error) {
      console.error(`[sweep] ${error instanceof Error ? error.message : String(error)}`);
    }
  };
  let sweeper;

  return {
    app,
    uploads,
    store,
    relay,
    /** Safe to log: no secret in it. */
    describe: () => ({
      storage: describeStorageConfig(storageConfig),
      database: database.describe,
      uploads: {
        maxSizeBytes: settings.maxSizeBytes,
        ttlHours: settings.ttlHours,
        allowedTypes: settings.allowedTypes ?? 'any',
        route: uploadOrigin === undefined ? 'through this app' : `direct to ${uploadOrigin} (multipart from ${settings.multipartThreshold} bytes)`,
      },
      relay: { demoEndpoint: env.WEBHOOK_DEMO === 'off' ? 'off' : demoUrl, sweepEverySeconds: sweepMs / 1000 },
    }),
    start() {
      relay.start();
      sweeper = setInterval(sweep, sweepMs);
      sweeper.unref();
      void sweep();
    },
    async close() {
      clearInterval(sweeper);
      await relay.stop();
      await demo.settled();
      await database.close();
    },
  };
}
