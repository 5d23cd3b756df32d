/** The S3 adapter, loaded (with the AWS SDK) only when a configuration chooses S3. */
import { isMissingPackage, missingS3Sdk, S3_PACKAGES } from '../dependencies.js';
import type * as S3Adapter from '../storage/s3/s3-storage.js';

export async function loadS3Adapter(): Promise<typeof S3Adapter> {
  try {
    return await import('../storage/s3/s3-storage.js');
  } catch (error) {
    if (isMissingPackage(error, [...S3_PACKAGES, '@aws-sdk', '@smithy'])) throw missingS3Sdk(error);
    throw error;
  }
}
