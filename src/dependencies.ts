/**
 * Optional peer dependencies, loaded only by the feature that needs them, and the errors that
 * say which package to install (or rebuild) when one is missing or built for another Node.
 */
import { StorageDependencyError } from './errors.js';

/** What S3 storage needs installed beside this package. */
export const S3_PACKAGES = ['@aws-sdk/client-s3', '@aws-sdk/s3-request-presigner'] as const;

const errorCode = (error: unknown): unknown => (error as { code?: unknown } | null)?.code;

/** Is `error` Node failing to find one of `packages` (not a module inside our own code)? */
export function isMissingPackage(error: unknown, packages: readonly string[]): boolean {
  const code = errorCode(error);
  if (code !== 'ERR_MODULE_NOT_FOUND' && code !== 'MODULE_NOT_FOUND') return false;
  const text = error instanceof Error ? error.message : String(error);
  return packages.some((name) => text.includes(`'${name}'`) || text.includes(`'${name}/`) || text.includes(`"${name}"`));
}

export function missingS3Sdk(cause: unknown): StorageDependencyError {
  return new StorageDependencyError(
    `S3 storage needs the AWS SDK, an optional peer dependency of @doorito/storage that is not installed (${S3_PACKAGES.join(', ')}).`,
    { packages: S3_PACKAGES, fix: `npm install ${S3_PACKAGES.join(' ')}`, cause },
  );
}

/** Is `error` a native module built for another Node version (`NODE_MODULE_VERSION` mismatch)? */
export function isAbiMismatch(error: unknown): boolean {
  const text = error instanceof Error ? error.message : String(error);
  return /NODE_MODULE_VERSION|compiled against a different Node\.js version/u.test(text);
}

export function nativeModuleMismatch(name: string, cause: unknown): StorageDependencyError {
  const text = cause instanceof Error ? cause.message : String(cause);
  const versions = /NODE_MODULE_VERSION (\d+)[\s\S]*?NODE_MODULE_VERSION (\d+)/u.exec(text);
  const detail = versions === null ? '' : ` (it was built for NODE_MODULE_VERSION ${versions[1]}; Node ${process.version} needs ${versions[2]})`;
  return new StorageDependencyError(`${name}'s native module was built for another Node version${detail}: rebuild ${name} for this Node version.`, {
    packages: [name],
    fix: `npm rebuild ${name}`,
    cause,
  });
}
