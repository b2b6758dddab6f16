export type { Table, TableFormat } from './table.js';
export { MISSING_TOKENS, isMissing, parseNumber, parseBoolean, parseDate } from './cells.js';
export { readTable, readTableFromStream, openRows, openRowsFromStream, formatFromPath, type ReadOptions, type Row, type RowSource } from './read.js';
export { inferSchema, type InferOptions, type InferredSchema } from './schema.js';
export { profileFile, profileTable, type TableProfile, type ColumnProfile, type TargetProfile, type ProfileFileOptions } from './profile.js';
export {
  fitPipeline,
  transformTable,
  transformRecords,
  encodeTarget,
  dropDuplicateRows,
  columnIndex,
  validatePipeline,
  quantile,
  PIPELINE_VERSION,
  type FittedPipeline,
  type FeatureStep,
  type PipelineOptions,
  type TargetEncoding,
  type Transformed,
  type DatePart,
} from './pipeline.js';
export { stratifiedKFold, holdoutSplit, strataFor, type Fold, type Holdout } from './split.js';
