import type { Cell } from '../core/index.js';

/** Input formats the readers understand. */
export type TableFormat = 'csv' | 'json' | 'ndjson';

/**
 * A table read fully into memory. Cells are kept as the reader produced them (strings from CSV,
 * typed values from JSON) and parsed later by the schema's rules, so inference and the fitted
 * pipeline agree on what "numeric" means.
 */
export interface Table {
  /** File name (or `<stdin>`) used in error messages. */
  source: string;
  format: TableFormat;
  columns: string[];
  /** Row-major cells; `rows[i][j]` is column `columns[j]`; missing tokens are already `null`. */
  rows: Cell[][];
  /** 1-based source line of each row (CSV line, NDJSON line, or JSON array index + 1). */
  lines: number[];
}
