// A first look at @doorito/storage: save, read, list, share and delete a file.
//
//   npm run example:quickstart           # local files under ./media
//   STORAGE_BACKEND=s3 AWS_STORAGE_BUCKET_NAME=demo AWS_S3_ENDPOINT_URL=http://127.0.0.1:7480 \
//   AWS_ACCESS_KEY_ID=… AWS_SECRET_ACCESS_KEY=… npm run example:quickstart   # any S3-compatible store
//
// The storage comes from the environment (see .env.example and docs/configuration.md).
// It imports the package by its name, exactly as your app would.
import { Readable } from 'node:stream';
import { text } from 'node:stream/consumers';
import { createStorageFromEnv, describeStorageConfig, getValidName, isStorageError } from '@doorito/storage';

console.log('storage   ', describeStorageConfig());
const storage = await createStorageFromEnv();
const month = new Date().toISOString().slice(0, 7).replace('-', '/');

try {
  // A user's filename is never a key: clean it first.
  const name = getValidName('C:\\Users\\me\\Quarterly report (final).txt');
  const wanted = `uploads/${month}/${name}`;

  // Content can be a string, Buffer, Blob or any stream; streams are never held whole.
  const first = await storage.save(wanted, Readable.from(['Hello ', 'from ', 'Doorito\n']));
  // The same name again is not overwritten: it gets a free alternative name.
  const second = await storage.save(wanted, 'A second file with the same name\n');

  console.log('saved     ', first.key, `${first.size} bytes`, first.contentType);
  console.log('saved     ', second.key, '(the name was taken)');
  console.log('read      ', JSON.stringify(await text(await storage.open(first.key))));
  console.log('stat      ', await storage.stat(first.key));
  console.log('url       ', await storage.url(first.key, { download: 'Quarterly report.txt' }));
  for await (const entry of storage.list(`uploads/${month}/`)) console.log('listed    ', entry.key, entry.size);

  await storage.delete(first.key);
  await storage.delete(second.key);
  console.log('deleted    both; exists now:', await storage.exists(first.key));

  // Bad input gets a typed error with a stable code.
  await storage.save('../../etc/passwd', 'nope').catch((error) => {
    if (!isStorageError(error)) throw error;
    console.log('refused   ', error.code, '-', error.message);
  });
} finally {
  storage.destroy?.();
}
