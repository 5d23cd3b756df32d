export {
  createStorage,
  createStorageFromEnv,
  describeStorageConfig,
  loadStorageConfig,
  loadUploadSettingsFromEnv,
  type FileSystemStorageConfig,
  type S3CannedAcl,
  type S3StorageConfig,
  type StorageConfig,
} from './storage-env.js';
export { BOOLEAN_WORDS, EnvReader, parseBoolean, parseInteger, parseUrl, type Env, type EnvProblem } from './readers.js';
