export { FileSystemStorage, type FileSystemStorageOptions } from './fs-storage.js';
