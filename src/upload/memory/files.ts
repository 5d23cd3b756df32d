/**
 * The UploadRepository of the in-memory store: files, their claim on storage keys, batches.
 * Every write goes through the journal; lookups by id, key, batch and idempotency key use the
 * state's indexes, so the upload path costs the same at 100 records as at 100,000.
 */
import { StorageKeyTakenError } from '../errors.js';
import type { UploadBatch, UploadErrorCode, UploadFile, UploadFileStatus } from '../model.js';
import { heldStorageKey, LIVE_FILE_STATUSES, type FilePage, type FileQuery, type UploadFilePatch, type UploadRepository } from '../ports.js';
import { copy, instant, type Workspace } from './state.js';

type FileOrder = Pick<UploadFile, 'createdAt' | 'id'>;

/** Oldest first, then by id (as the SQL stores order them). */
const older = (a: FileOrder, b: FileOrder): number => a.createdAt.getTime() - b.createdAt.getTime() || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);

function matches(file: UploadFile, query: Omit<FileQuery, 'limit'>): boolean {
  return (
    query.statuses.includes(file.status) &&
    file.createdAt < query.createdBefore &&
    (query.createdFrom === undefined || file.createdAt >= query.createdFrom)
  );
}

/** The repository over the workspace `workspace()` gives (the caller holds the store's lock). */
export class MemoryRepository implements UploadRepository {
  readonly #workspace: () => Workspace;

  /** `workspace` throws once a transaction's repository is used after the transaction ended. */
  constructor(workspace: () => Workspace) {
    this.#workspace = workspace;
  }

  async createFile(file: UploadFile): Promise<void> {
    const { state } = this.#workspace();
    if (state.files.has(file.id)) throw new Error(`upload file ${file.id} already exists`);
    this.#checkKey(file.id, file);
    this.#put(copy(file));
  }

  /** Throws StorageKeyTakenError when another live file holds the key that `file` (as file `id`) would hold. */
  #checkKey(id: string, file: Pick<UploadFile, 'status' | 'storageKey'>): void {
    const key = heldStorageKey(file);
    if (key === undefined) return;
    const holder = this.#workspace().state.liveKeys.get(key);
    if (holder !== undefined && holder !== id) throw new StorageKeyTakenError(key);
  }

  /** Store `file` (a new object), moving it in the indexes from its previous version. */
  #put(file: UploadFile): void {
    const { state, journal } = this.#workspace();
    const previous = state.files.get(file.id);
    const released = previous === undefined ? undefined : heldStorageKey(previous);
    const held = heldStorageKey(file);
    if (released !== undefined && released !== held && state.liveKeys.get(released) === file.id) journal.delete(state.liveKeys, released);
    if (held !== undefined && state.liveKeys.get(held) !== file.id) journal.set(state.liveKeys, held, file.id);
    if (previous?.storageKey !== file.storageKey) {
      if (previous !== undefined) journal.unlink(state.filesByKey, previous.storageKey, file.id);
      journal.link(state.filesByKey, file.storageKey, file.id);
    }
    if (previous?.batchId !== file.batchId) {
      if (previous?.batchId !== undefined) journal.unlink(state.filesByBatch, previous.batchId, file.id);
      if (file.batchId !== undefined) journal.link(state.filesByBatch, file.batchId, file.id);
    }
    journal.set(state.files, file.id, file);
  }

  /** Delete file `id` and its entries in the indexes (its key is released). */
  #remove(id: string): boolean {
    const { state, journal } = this.#workspace();
    const file = state.files.get(id);
    if (file === undefined) return false;
    const held = heldStorageKey(file);
    if (held !== undefined && state.liveKeys.get(held) === id) journal.delete(state.liveKeys, held);
    journal.unlink(state.filesByKey, file.storageKey, id);
    if (file.batchId !== undefined) journal.unlink(state.filesByBatch, file.batchId, id);
    journal.delete(state.files, id);
    return true;
  }

  /** The files of these ids, oldest first, as copies. */
  #filesOf(ids: Iterable<string> | undefined): UploadFile[] {
    const { files } = this.#workspace().state;
    const found: UploadFile[] = [];
    for (const id of ids ?? []) {
      const file = files.get(id);
      if (file !== undefined) found.push(file);
    }
    return found.sort(older).map(copy);
  }

  async getFile(id: string): Promise<UploadFile | undefined> {
    const file = this.#workspace().state.files.get(id);
    return file === undefined ? undefined : copy(file);
  }

  async updateFile(id: string, patch: UploadFilePatch, options: { expectedStatus?: UploadFileStatus; now?: Date } = {}) {
    const file = this.#workspace().state.files.get(id);
    if (file === undefined) return undefined;
    if (options.expectedStatus !== undefined && file.status !== options.expectedStatus) return undefined;
    const updated: UploadFile = { ...file, ...copy(patch), updatedAt: instant(options.now) };
    this.#checkKey(id, updated);
    this.#put(updated);
    return copy(updated);
  }

  async claimStorageKey(id: string, key: string, now?: Date): Promise<boolean> {
    const { state } = this.#workspace();
    const file = state.files.get(id);
    if (file === undefined || !LIVE_FILE_STATUSES.includes(file.status)) return false;
    const holder = key === '' ? undefined : state.liveKeys.get(key);
    if (holder !== undefined && holder !== id) return false;
    this.#put({ ...file, storageKey: key, updatedAt: instant(now) });
    return true;
  }

  async findLiveStorageKeys(keys: readonly string[]): Promise<Set<string>> {
    const { liveKeys } = this.#workspace().state;
    return new Set(keys.filter((key) => liveKeys.has(key)));
  }

  async deleteFile(id: string): Promise<void> {
    this.#remove(id);
  }

  async deleteFiles(ids: readonly string[]): Promise<number> {
    let deleted = 0;
    for (const id of ids) if (this.#remove(id)) deleted += 1;
    return deleted;
  }

  async failFiles(
    ids: readonly string[],
    error: { code: UploadErrorCode; message: string },
    options: { expectedStatuses?: readonly UploadFileStatus[]; now?: Date } = {},
  ): Promise<string[]> {
    const { files } = this.#workspace().state;
    const now = instant(options.now);
    const changed: string[] = [];
    for (const id of new Set(ids)) {
      const file = files.get(id);
      if (file === undefined || (options.expectedStatuses !== undefined && !options.expectedStatuses.includes(file.status))) continue;
      // Failed holds no key: nothing to check, and the key is released.
      this.#put({ ...file, status: 'failed', errorCode: error.code, errorMessage: error.message, updatedAt: now });
      changed.push(id);
    }
    return changed;
  }

  async listBatchFiles(batchId: string): Promise<UploadFile[]> {
    return this.#filesOf(this.#workspace().state.filesByBatch.get(batchId));
  }

  async findFiles(query: FileQuery): Promise<UploadFile[]> {
    return [...this.#workspace().state.files.values()]
      .filter((f) => matches(f, query))
      .sort(older)
      .slice(0, query.limit)
      .map(copy);
  }

  async countFiles(query: Omit<FileQuery, 'limit'>): Promise<number> {
    let count = 0;
    for (const file of this.#workspace().state.files.values()) if (matches(file, query)) count += 1;
    return count;
  }

  async listFiles(page: FilePage): Promise<UploadFile[]> {
    const { after, statuses } = page;
    return [...this.#workspace().state.files.values()]
      .filter((f) => (statuses === undefined || statuses.includes(f.status)) && (after === undefined || older(f, after) < 0))
      .sort((a, b) => older(b, a))
      .slice(0, page.limit)
      .map(copy);
  }

  async findFilesByStorageKey(key: string): Promise<UploadFile[]> {
    return this.#filesOf(this.#workspace().state.filesByKey.get(key));
  }

  async createBatch(batch: UploadBatch): Promise<UploadBatch> {
    const { state, journal } = this.#workspace();
    const existing = state.batchIds.get(batch.idempotencyKey);
    if (existing !== undefined) return copy(state.batches.get(existing) as UploadBatch);
    if (state.batches.has(batch.id)) throw new Error(`upload batch ${batch.id} already exists`);
    journal.set(state.batches, batch.id, copy(batch));
    journal.set(state.batchIds, batch.idempotencyKey, batch.id);
    return copy(batch);
  }

  async getBatch(id: string): Promise<UploadBatch | undefined> {
    const batch = this.#workspace().state.batches.get(id);
    return batch === undefined ? undefined : copy(batch);
  }

  async updateBatch(id: string, patch: Pick<UploadBatch, 'status'>, now?: Date): Promise<UploadBatch | undefined> {
    const { state, journal } = this.#workspace();
    const batch = state.batches.get(id);
    if (batch === undefined) return undefined;
    const updated: UploadBatch = { ...batch, status: patch.status, updatedAt: instant(now) };
    journal.set(state.batches, id, updated);
    return copy(updated);
  }
}
