/**
 * End to end, as in production: the portal with NODE_ENV=production on the real S3 server (the
 * Ceph script, or whatever the test run found) and the Postgres store. An upload through HTTP
 * reaches the demo webhook receiver through the outbox relay, and the receiver's fetch of the
 * presigned URL returns the same sha256; a redelivery through the API reaches it again.
 */
import { createHash, randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { rawClient, describeOneS3, s3Variables } from '../helpers/s3-env.js';
import { multipart, startPortal, type Portal } from '../helpers/portal.js';
import { ListObjectsV2Command } from '@aws-sdk/client-s3';

const MiB = 1024 * 1024;
const pgUrl = process.env.PG_TEST_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
// Trust auth ignores the password: it is here to prove the portal never prints it.
const withPassword = (() => {
  const url = new URL(pgUrl);
  url.password = 'pg-secret-e2e-7f3a';
  return url.toString();
})();

async function waitFor<T>(probe: () => Promise<T | undefined>, what: string, logs: () => string, timeoutMs = 30_000): Promise<T> {
  const until = performance.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (performance.now() > until) throw new Error(`timed out waiting for ${what}:\n${logs()}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

describeOneS3('example portal end to end on S3 + Postgres [portal]', (s3) => {
  const schema = `portal_e2e_${randomBytes(4).toString('hex')}`;
  const prefix = `portal-e2e-${randomBytes(4).toString('hex')}`;
  let portal: Portal;
  const pool = new pg.Pool({ connectionString: pgUrl, max: 2 });

  beforeAll(async () => {
    const started = performance.now();
    portal = await startPortal({
      NODE_ENV: 'production',
      ...s3Variables(s3, s3.bucket),
      AWS_LOCATION: prefix,
      AWS_QUERYSTRING_EXPIRE: '600',
      DATABASE_URL: withPassword,
      DATABASE_SCHEMA: schema,
    });
    console.log(`portal e2e: started (S3 ${s3.provider}, Postgres schema ${schema}) in ${(performance.now() - started).toFixed(0)} ms`);
  });
  afterAll(async () => {
    await portal?.stop();
    await pool.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    await pool.end();
  });

  it('upload over HTTP → S3 + Postgres → relay → demo receiver, whose fetch of the presigned URL has the same sha256', async () => {
    const content = randomBytes(12 * MiB + 5);
    const digest = createHash('sha256').update(content).digest('hex');
    const form = multipart([{ name: 'file', filename: 'e2e report.pdf', type: 'application/pdf', content }]);
    const t0 = performance.now();
    const response = await fetch(`${portal.url}/uploads`, { method: 'POST', headers: { 'content-type': form.contentType }, body: form.body });
    const tStored = performance.now();
    expect(response.status).toBe(201);
    const { files } = (await response.json()) as { files: Array<{ id: string; status: string; sha256: string; url: string }> };
    const [file] = files;
    expect(file).toMatchObject({ status: 'stored', sha256: digest });
    // A presigned URL on the S3 endpoint, not a /media/ URL of the portal.
    expect(file?.url.startsWith(`${s3.endpoint}/`)).toBe(true);
    expect(file?.url).toContain('X-Amz-Signature=');

    const delivery = await (async () => {
      for (;;) {
        const { deliveries } = (await (await fetch(`${portal.url}/webhooks/demo`)).json()) as { deliveries: Array<Record<string, unknown>> };
        const found = deliveries.find((d) => d['file_id'] === file?.id && d['sha256_match'] !== null);
        if (found) return found;
        if (performance.now() - t0 > 60_000) throw new Error(`no verified delivery in 60 s:\n${portal.logs()}`);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    })();
    const tVerified = performance.now();
    expect(delivery).toMatchObject({ event: 'file.stored', signature_valid: true, sha256_match: true, error: null });
    console.log(
      `portal e2e: 12 MiB upload answered in ${(tStored - t0).toFixed(0)} ms; webhook delivered and its fetch of the presigned URL verified after ${(tVerified - t0).toFixed(0)} ms in all`,
    );

    // The rows are in Postgres: the record stored, its event delivered, by one delivery to the demo endpoint.
    const deliveryRows = () =>
      pool.query(
        `SELECT f.status, e.status AS event_status, d.id AS delivery_id, d.status AS delivery_status, d.attempts, d.last_status
         FROM "${schema}".upload_file f JOIN "${schema}".outbox_event e ON e.aggregate_id = f.id::text JOIN "${schema}".webhook_delivery d ON d.event_id = e.id
         WHERE f.id = $1`,
        [file?.id],
      );
    const { rows } = await deliveryRows();
    expect(rows).toEqual([{ status: 'stored', event_status: 'delivered', delivery_id: expect.any(String), delivery_status: 'delivered', attempts: 1, last_status: 204 }]);

    // The API lists that delivery; redelivering it sends the same webhook-id again, verified.
    const deliveryId = rows[0]?.delivery_id as string;
    const api = (await (await fetch(`${portal.url}/api/deliveries`)).json()) as { items: Array<Record<string, unknown>> };
    expect(api.items.find((d) => d['id'] === deliveryId)).toMatchObject({ event_id: delivery['delivery'], status: 'delivered', attempts: 1, last_status: 204 });
    const again = await fetch(`${portal.url}/api/deliveries/${deliveryId}/redeliver`, { method: 'POST' });
    expect(again.status).toBe(200);
    expect(await again.json()).toMatchObject({ id: deliveryId, status: 'pending', attempts: 0 });
    const same = await waitFor(
      async () => {
        const { deliveries } = (await (await fetch(`${portal.url}/webhooks/demo`)).json()) as { deliveries: Array<Record<string, unknown>> };
        const entries = deliveries.filter((d) => d['delivery'] === delivery['delivery']);
        return entries.length === 2 && entries[0]?.['sha256_match'] !== null ? entries : undefined;
      },
      'the redelivery to reach the receiver',
      portal.logs,
    );
    expect(same[0]).toMatchObject({ signature_valid: true, duplicate: true, sha256_match: true });
    const recorded = await waitFor(
      async () => (await deliveryRows()).rows.find((row) => row.delivery_status === 'delivered'),
      'the redelivery to be recorded',
      portal.logs,
    );
    expect(recorded).toMatchObject({ event_status: 'delivered', attempts: 1, last_status: 204 });
    // Ids that are no delivery: 404, also those that are no UUID (Postgres would refuse the cast).
    for (const id of ['0190b6a1-0000-7000-8000-000000000000', 'not-a-uuid']) {
      const missing = await fetch(`${portal.url}/api/deliveries/${id}/redeliver`, { method: 'POST' });
      expect(missing.status, id).toBe(404);
      expect(await missing.json()).toMatchObject({ code: 'not_found' });
    }

    // The object is in the bucket, under the configured location.
    const listed = await rawClient(s3).send(new ListObjectsV2Command({ Bucket: s3.bucket, Prefix: `${prefix}/uploads/` }));
    expect(listed.Contents?.map((o) => o.Size)).toEqual([content.length]);

    // Health covers both; the startup log shows the configuration without any secret.
    expect(await (await fetch(`${portal.url}/healthz`)).json()).toEqual({ status: 'ok', storage: 'ok', database: 'ok' });
    const logs = portal.logs();
    expect(logs).toContain('"kind": "postgres"');
    expect(logs).toContain('"backend": "s3"');
    expect(logs).not.toContain(s3.secretAccessKey);
    expect(logs).not.toContain('pg-secret-e2e-7f3a');

    // Deleting removes the object from the bucket too.
    expect((await fetch(`${portal.url}/uploads/${file?.id}`, { method: 'DELETE' })).status).toBe(204);
    const after = await rawClient(s3).send(new ListObjectsV2Command({ Bucket: s3.bucket, Prefix: `${prefix}/uploads/` }));
    expect(after.Contents ?? []).toEqual([]);
  });

  it('a plain HTML form straight to S3: POST /uploads/direct with method post, the form POST to the bucket, complete: stored in Postgres with the sha256 and its file.stored event', async () => {
    const content = randomBytes(300 * 1024 + 9);
    const digest = createHash('sha256').update(content).digest('hex');
    const started = await fetch(`${portal.url}/uploads/direct`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ filename: 'form scan.png', size: content.length, method: 'post' }),
    });
    expect(started.status).toBe(201);
    const { file, upload } = (await started.json()) as { file: { id: string; status: string }; upload: { method: string; url: string; fields: Record<string, string> } };
    expect(file.status).toBe('uploading');
    expect(upload.method).toBe('POST');
    expect(upload.url.startsWith(`${s3.endpoint}/`)).toBe(true);
    expect(JSON.stringify(upload)).not.toContain(s3.secretAccessKey);

    const form = new FormData();
    for (const [name, value] of Object.entries(upload.fields)) form.append(name, value);
    form.append('file', new Blob([content], { type: 'image/png' }), 'form scan.png');
    const posted = await fetch(upload.url, { method: 'POST', body: form });
    if (s3.provider === 'swift') {
      // Swift's S3 API answers every POST upload 412: the upload is aborted, and nothing is stored.
      expect(posted.status).toBe(412);
      expect((await fetch(`${portal.url}/uploads/${file.id}/direct`, { method: 'DELETE' })).status).toBe(200);
      return;
    }
    expect(posted.status).toBe(204);
    const completed = await fetch(`${portal.url}/uploads/${file.id}/complete`, { method: 'POST' });
    expect(completed.status).toBe(200);
    expect(await completed.json()).toMatchObject({ id: file.id, status: 'stored', sha256: digest, size_bytes: content.length });
    const { rows } = await pool.query(
      `SELECT f.status, f.sha256, e.event_type, e.payload->>'sha256' AS event_sha256 FROM "${schema}".upload_file f JOIN "${schema}".outbox_event e ON e.aggregate_id = f.id::text WHERE f.id = $1`,
      [file.id],
    );
    expect(rows).toEqual([{ status: 'stored', sha256: digest, event_type: 'file.stored', event_sha256: digest }]);
  });
});
