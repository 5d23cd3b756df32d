// The Doorito upload portal: an Express app on @doorito/storage.
//
//   npm run example                 # http://localhost:3000, files under ./media, SQLite under ./data
//   PORT=8080 npm run example
//   NODE_ENV=production AWS_STORAGE_BUCKET_NAME=… AWS_S3_ENDPOINT_URL=… AWS_ACCESS_KEY_ID=… \
//   AWS_SECRET_ACCESS_KEY=… DATABASE_URL=postgres://… npm run example   # S3 and Postgres
//
// Variables: see .env.example (storage, FILE_UPLOAD_*) and examples/express/README.md.
import { createServer } from 'node:http';
import { openPortal } from './portal.mjs';

const env = process.env;
const port = Number(env.PORT ?? 3000);
const server = createServer();
// A slow client may not hold a socket forever; uploads themselves can take long.
server.headersTimeout = 60_000;
server.requestTimeout = 0;

await new Promise((resolve, reject) => {
  server.once('error', reject);
  server.listen(port, env.HOST || undefined, resolve);
});
const actualPort = server.address().port;
const publicUrl = (env.PUBLIC_URL || `http://localhost:${actualPort}`).replace(/\/+$/u, '');

let portal;
try {
  portal = await openPortal({ env, publicUrl, internalUrl: `http://127.0.0.1:${actualPort}` });
} catch (error) {
  // A configuration problem: its message names the variable and never holds a secret.
  console.error(`[portal] cannot start: ${error instanceof Error ? error.message : String(error)}`);
  server.close();
  process.exit(1);
}
server.on('request', portal.app);
portal.start();

console.log('[portal] configuration', JSON.stringify(portal.describe(), null, 2));
console.log(`[portal] listening on ${publicUrl} (port ${actualPort})`);

let closing = false;
const shutdown = async (signal) => {
  if (closing) return;
  closing = true;
  console.log(`[portal] ${signal}: closing`);
  server.close();
  server.closeIdleConnections();
  await portal.close();
  process.exit(0);
};
process.on('SIGINT', () => void shutdown('SIGINT'));
process.on('SIGTERM', () => void shutdown('SIGTERM'));
