/** Postgres rows: `pg` already returns Dates, parsed jsonb, arrays and booleans. */
import { rowMappers } from '../upload/sql-rows.js';

export type { Row } from '../upload/sql-rows.js';

/** Ids are uuid columns: anything else cannot exist, and Postgres would reject it as a type error. */
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/iu;
export const isUuid = (id: string): boolean => UUID.test(id);

export const { toFile, toBatch, toEvent, toDelivery, toEndpoint, toWebhookDelivery } = rowMappers({
  date: (value) => (value instanceof Date ? value : new Date(String(value))),
  json: (value) => value,
  bool: (value) => value === true,
});
