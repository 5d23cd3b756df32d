/**
 * Headless Chromium for the portal's page tests, and a portal of its own on an S3 bucket of its
 * own (so that a CORS rule can name that portal's origin only). Chromium is the apt package,
 * driven by playwright-core; in CI its absence fails the run.
 */
import { CreateBucketCommand, DeleteBucketCommand, PutBucketCorsCommand } from '@aws-sdk/client-s3';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chromium, type Browser } from 'playwright-core';
import { afterAll, beforeAll } from 'vitest';
import { startPortal, type Portal } from './portal.js';
import { rawClient, s3Variables, type S3TestEnv } from './s3-env.js';
import { s3Cleanup } from './s3-fixture.js';

export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
export const chromiumAvailable = existsSync(CHROMIUM);
if (!chromiumAvailable && process.env.CI) throw new Error(`Chromium is required in CI at ${CHROMIUM} (apt-get install -y chromium)`);

export function launchChromium(): Promise<Browser> {
  if (!chromiumAvailable) throw new Error(`no Chromium at ${CHROMIUM} (apt-get install -y chromium)`);
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'],
  });
}

export interface PortalOnBucket {
  readonly portal: Portal;
  readonly browser: Browser;
  readonly client: ReturnType<typeof rawClient>;
  readonly bucket: string;
}

/**
 * In the calling describe: a new bucket, the portal in production mode on it (plus `env`), a
 * CORS rule for the portal's origin when `cors` (PUT, GET, HEAD, any header, ETag exposed), and
 * Chromium; all removed afterwards.
 */
export function portalOnOwnBucket(s3: S3TestEnv, { prefix, env = {}, cors }: { prefix: string; env?: Record<string, string>; cors: boolean }): PortalOnBucket {
  const client = rawClient(s3);
  const bucket = `${prefix}-${randomBytes(4).toString('hex')}`;
  let portal: Portal | undefined;
  let browser: Browser | undefined;

  beforeAll(async () => {
    await client.send(new CreateBucketCommand({ Bucket: bucket }));
    portal = await startPortal({
      NODE_ENV: 'production',
      ...s3Variables(s3, bucket),
      ...env,
    });
    if (cors) {
      // https://docs.aws.amazon.com/AmazonS3/latest/API/API_PutBucketCors.html; multipart clients read each part's ETag.
      await client.send(
        new PutBucketCorsCommand({
          Bucket: bucket,
          CORSConfiguration: { CORSRules: [{ AllowedOrigins: [portal.url], AllowedMethods: ['PUT', 'GET', 'HEAD'], AllowedHeaders: ['*'], ExposeHeaders: ['ETag'], MaxAgeSeconds: 600 }] },
        }),
      );
    }
    browser = await launchChromium();
  });
  afterAll(async () => {
    await browser?.close();
    await portal?.stop();
    await s3Cleanup(client, bucket, '');
    await client.send(new DeleteBucketCommand({ Bucket: bucket })).catch(() => undefined);
    client.destroy();
  });

  const ready = <T>(value: T | undefined, what: string): T => {
    if (value === undefined) throw new Error(`${what} is not started (beforeAll failed)`);
    return value;
  };
  return {
    get portal() {
      return ready(portal, 'the portal');
    },
    get browser() {
      return ready(browser, 'Chromium');
    },
    client,
    bucket,
  };
}
