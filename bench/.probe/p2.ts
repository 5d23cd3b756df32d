import { S3Client, CreateBucketCommand, DeleteObjectCommand, DeleteBucketCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { patternStream } from '../../test/helpers/streams.js';
import { S3Storage } from '../../src/storage/s3/index.js';
const env = process.env;
const client = new S3Client({ endpoint: env.S3_TEST_ENDPOINT!, region: 'us-east-1', credentials: { accessKeyId: env.S3_TEST_ACCESS_KEY_ID!, secretAccessKey: env.S3_TEST_SECRET_ACCESS_KEY! }, forcePathStyle: true, requestChecksumCalculation: 'WHEN_REQUIRED', responseChecksumValidation: 'WHEN_REQUIRED' });
const Bucket = 'doorito-probe-' + Date.now();
await client.send(new CreateBucketCommand({ Bucket }));
const storage = new S3Storage({ client, bucket: Bucket });
const SIZE = 256 * 1024 * 1024;
try {
for (let r = 0; r < 3; r++) {
  let t = performance.now();
  await new Upload({ client, params: { Bucket, Key: 'raw', Body: patternStream(SIZE, r) }, partSize: 8 << 20, queueSize: 4 }).done();
  const raw = performance.now() - t;
  await client.send(new DeleteObjectCommand({ Bucket, Key: 'raw' }));
  t = performance.now();
  await storage.save('ours', patternStream(SIZE, r));
  const ours = performance.now() - t;
  await client.send(new DeleteObjectCommand({ Bucket, Key: 'ours' }));
  t = performance.now();
  await client.send(new PutObjectCommand({ Bucket, Key: 'single', Body: patternStream(SIZE, r), ContentLength: SIZE }));
  const single = performance.now() - t;
  await client.send(new DeleteObjectCommand({ Bucket, Key: 'single' }));
  console.log('raw', (256 / raw * 1000).toFixed(0), 'ours', (256 / ours * 1000).toFixed(0), 'single', (256 / single * 1000).toFixed(0));
}
} finally { await client.send(new DeleteBucketCommand({ Bucket })); }
