export type { Table, TableFormat } from './table.js';
export { MISSING_TOKENS, isMissing, parseNumber, parseBoolean, parseDate, categoryKey } from './cells.js';
export { Column, type ColumnEvidence } from './column.js';
export { readTable, readTableFromStream, tableFromRows, rowsOf, formatFromPath, ndjsonRecords, type ReadOptions } from './read.js';
export { inferSchema, type InferOptions, type InferredSchema } from './schema.js';
export { profileFile, profileFileInWorker, profileTable, withoutIdentifierValues, type TableProfile, type ColumnProfile, type TargetProfile, type ProfileFileOptions } from './profile.js';
export type { Histogram } from './histogram.js';
export {
  fitPipeline,
  transformTable,
  transformRecords,
  Problems,
  listNames,
  shortName,
  absentFeatures,
  unreadableFeatures,
  encodeTarget,
  columnIndex,
  validatePipeline,
  quantileOf,
  PIPELINE_VERSION,
  type FittedPipeline,
  type FeatureStep,
  type PipelineOptions,
  type TargetEncoding,
  type Transformed,
  type DatePart,
} from './pipeline.js';
export { dropDuplicateRows } from './rows.js';
export { stratifiedKFold, holdoutSplit, strataFor, type Fold, type Holdout } from './split.js';
export { csvField } from './csv.js';
export { columnPhi, phiNameKind, isAgeName, valueShape, shapeKind, sampleTexts, PHI_KINDS, type PhiKind, type ColumnPhi, type ValueShape } from './phi.js';
export { CsvScanner, ESCAPED, QUOTED, type CsvBatch } from './csv.js';
export { detectDelimiter, findBinaryByte, checkHeader, sniffFormat } from './read.js';
