export * from './types.js';
export { openSqliteStore, type SqliteStoreOptions, type StoreLog } from './sqlite.js';
