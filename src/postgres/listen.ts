/**
 * LISTEN/NOTIFY wake-ups for the relay: on a pool (a connection of its own, replaced when it
 * breaks) or on the host's single client.
 */
import type { PoolLike, PooledClient } from './migrations.js';
import type { ClientLike, SerializedClient } from './single-client.js';

/** Channel of the NOTIFY sent when an event is committed; the payload is `<schema>:<event id>`. */
export const OUTBOX_CHANNEL = 'doorito_outbox';

/** How long to wait before listening again after the LISTEN connection broke. */
const RELISTEN_DELAY_MS = 1_000;

/** Calls `onPayload` with each NOTIFY payload of {@link OUTBOX_CHANNEL}; resolves to unsubscribe. */
export type Listen = (onPayload: (payload: string) => void, onRelisten: () => void) => Promise<() => Promise<void>>;

/**
 * LISTEN on a connection of its own, held from the pool until unsubscribed. When that
 * connection breaks (a restart, a terminated backend), listen again on a fresh one and call
 * `onRelisten` (events committed meanwhile were not announced); polling covers the gap.
 */
export function listenOnPool(pool: PoolLike): Listen {
  return async (onPayload, onRelisten) => {
    let client: PooledClient | undefined;
    let closed = false;
    let retry: NodeJS.Timeout | undefined;

    const listen = async (): Promise<void> => {
      const next = await pool.connect();
      next.on('notification', (message) => {
        if (message.channel === OUTBOX_CHANNEL && message.payload !== undefined) onPayload(message.payload);
      });
      next.on('error', (error) => {
        // A broken connection: not given back to the pool, and replaced.
        next.removeAllListeners('notification');
        next.release(error);
        if (client === next) client = undefined;
        if (!closed) retry = setTimeout(relisten, RELISTEN_DELAY_MS);
      });
      try {
        await next.query(`LISTEN ${OUTBOX_CHANNEL}`);
      } catch (error) {
        next.removeAllListeners();
        next.release(true);
        throw error;
      }
      client = next;
    };
    const relisten = () => {
      listen().then(onRelisten, () => {
        if (!closed) retry = setTimeout(relisten, RELISTEN_DELAY_MS);
      });
    };

    await listen();
    return async () => {
      closed = true;
      clearTimeout(retry);
      const current = client;
      client = undefined;
      if (current === undefined) return;
      current.removeAllListeners('notification');
      let broken = false;
      await current.query(`UNLISTEN ${OUTBOX_CHANNEL}`).catch(() => {
        broken = true;
      });
      current.removeAllListeners('error');
      current.release(broken);
    };
  };
}

/**
 * LISTEN on the host's own client. Only this subscription's listener is added and removed: the
 * client's other listeners are the host's. If the client breaks, the host reconnects it (and
 * builds a new store); until then the relay polls.
 */
export function listenOnClient(serialized: SerializedClient): Listen {
  const client: ClientLike = serialized.client;
  return async (onPayload) => {
    const onNotification = (message: { channel: string; payload?: string | undefined }) => {
      if (message.channel === OUTBOX_CHANNEL && message.payload !== undefined) onPayload(message.payload);
    };
    client.on('notification', onNotification);
    try {
      await serialized.query(`LISTEN ${OUTBOX_CHANNEL}`);
    } catch (error) {
      client.removeListener('notification', onNotification);
      throw error;
    }
    return async () => {
      client.removeListener('notification', onNotification);
      await serialized.query(`UNLISTEN ${OUTBOX_CHANNEL}`);
    };
  };
}
