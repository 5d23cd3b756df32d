/**
 * Presigned POST policies (S3 browser-based uploads, SigV4): a form a plain HTML page can
 * submit, whose policy binds the exact key, the exact `Content-Type`, the exact size and an
 * expiry. Signed here with the client's own credentials, the way SigV4 signs a policy: the
 * base64 of the policy document is the string to sign.
 * https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-HTTPPOSTConstructPolicy.html
 * https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-post-example.html
 */
import { createHmac } from 'node:crypto';
import type { S3Client } from '@aws-sdk/client-s3';
import type { PresignUploadOptions, PresignedPost } from '../../types.js';
import { checkPresignOptions } from '../../signed-upload.js';
import { StorageConfigError } from '../../errors.js';
import { UrlSigner } from './url-signer.js';
import { MAX_PUT_SIZE } from './direct-uploads.js';
import type { WriteParams } from './write-protocol.js';

const hmac = (key: Buffer | string, data: string): Buffer => createHmac('sha256', key).update(data, 'utf8').digest();

/** `20261202T101500Z` and `20261202`. */
function amzDates(now: Date): { amzDate: string; dateStamp: string } {
  const amzDate = now.toISOString().replace(/[-:]/gu, '').replace(/\.\d{3}/u, '');
  return { amzDate, dateStamp: amzDate.slice(0, 8) };
}

const xmlText = (value: string): string => value.replace(/&/gu, '&amp;').replace(/</gu, '&lt;').replace(/>/gu, '&gt;');

/** `a=1&b=2` (PutObject's `Tagging`) as the XML tag set a POST form carries. */
function taggingXml(tagging: string): string {
  const tags = [...new URLSearchParams(tagging)].map(([key, value]) => `<Tag><Key>${xmlText(key)}</Key><Value>${xmlText(value)}</Value></Tag>`);
  return `<Tagging><TagSet>${tags.join('')}</TagSet></Tagging>`;
}

/**
 * The form fields that carry the storage's write defaults (ACL, object parameters): a POST
 * form has no headers, so each travels as a field the policy pins.
 * https://docs.aws.amazon.com/AmazonS3/latest/API/RESTObjectPOST.html
 */
export function postFormFields(params: WriteParams): Record<string, string> {
  const fields: Record<string, string> = {};
  const names: Partial<Record<keyof WriteParams, string>> = {
    ACL: 'acl',
    CacheControl: 'Cache-Control',
    ContentDisposition: 'Content-Disposition',
    ContentEncoding: 'Content-Encoding',
    StorageClass: 'x-amz-storage-class',
    ServerSideEncryption: 'x-amz-server-side-encryption',
    SSEKMSKeyId: 'x-amz-server-side-encryption-aws-kms-key-id',
    SSEKMSEncryptionContext: 'x-amz-server-side-encryption-context',
  };
  for (const [name, value] of Object.entries(params) as Array<[keyof WriteParams, unknown]>) {
    if (value === undefined) continue;
    const field = names[name];
    if (field !== undefined) fields[field] = String(value);
    else if (name === 'Expires') fields.Expires = (value as Date).toUTCString();
    else if (name === 'BucketKeyEnabled') fields['x-amz-server-side-encryption-bucket-key-enabled'] = String(value);
    else if (name === 'Tagging') fields.tagging = taggingXml(String(value));
    else if (name === 'Metadata') for (const [key, meta] of Object.entries(value as Record<string, string>)) fields[`x-amz-meta-${key}`] = meta;
    else throw new StorageConfigError(`objectParameters.${name} cannot travel in a presigned POST form; use a presigned PUT.`, { option: `objectParameters.${name}` });
  }
  return fields;
}

export class PostPolicySigner {
  readonly #client: S3Client;
  readonly #bucket: string;
  readonly #urls: UrlSigner;
  /** ACL and the like: every form carries them, and its policy pins them. */
  readonly #extraFields: Record<string, string>;

  constructor(client: S3Client, bucket: string, writeDefaults: WriteParams) {
    this.#client = client;
    this.#bucket = bucket;
    this.#urls = new UrlSigner(client, bucket);
    this.#extraFields = postFormFields(writeDefaults);
  }

  async presign(fullKey: string, options: Omit<PresignUploadOptions, 'md5'>, now = new Date()): Promise<PresignedPost> {
    const expiresIn = checkPresignOptions(options, MAX_PUT_SIZE);
    const credentials = await this.#client.config.credentials();
    const region = await this.#client.config.region();
    const { amzDate, dateStamp } = amzDates(now);
    const credential = `${credentials.accessKeyId}/${dateStamp}/${region}/s3/aws4_request`;
    const expiresAt = new Date(Math.floor(now.getTime() / 1000) * 1000 + expiresIn * 1000);
    const fields: Record<string, string> = {
      ...this.#extraFields,
      key: fullKey,
      'Content-Type': options.contentType,
      ...(options.contentDisposition === undefined ? {} : { 'Content-Disposition': options.contentDisposition }),
      'x-amz-algorithm': 'AWS4-HMAC-SHA256',
      'x-amz-credential': credential,
      'x-amz-date': amzDate,
      ...(credentials.sessionToken === undefined ? {} : { 'x-amz-security-token': credentials.sessionToken }),
    };
    // Every field is pinned exactly; the size is exactly the declared one.
    const policy = {
      expiration: expiresAt.toISOString(),
      conditions: [{ bucket: this.#bucket }, ...Object.entries(fields).map(([name, value]) => ({ [name]: value })), ['content-length-range', options.size, options.size]],
    };
    const encoded = Buffer.from(JSON.stringify(policy), 'utf8').toString('base64');
    const signingKey = hmac(hmac(hmac(hmac(`AWS4${credentials.secretAccessKey}`, dateStamp), region), 's3'), 'aws4_request');
    return {
      method: 'POST',
      url: await this.#urls.plainUrl(''),
      fields: { ...fields, policy: encoded, 'x-amz-signature': hmac(signingKey, encoded).toString('hex') },
      expiresAt,
    };
  }
}
