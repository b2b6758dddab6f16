export * from './types.js';
export { openSqliteStore, type SqliteStoreOptions, type StoreLog } from './sqlite.js';
export { openPostgresStore, postgresFailure, type PostgresStoreOptions } from './postgres.js';
export { openBlobStore, blobKeyProblem, listingSha256, type BlobStore, type BlobDirEntry, type StorageConfig } from './blob.js';
