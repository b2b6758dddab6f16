export * from './types.js';
export { openSqliteStore, type SqliteStoreOptions, type StoreLog } from './sqlite.js';
// The atomic writers live in core (one helper for every room); re-exported for existing callers.
export { writeFileAtomic, streamToFileAtomic } from '../core/index.js';
