import type { Column } from './column.js';

/** Input formats the readers understand. */
export type TableFormat = 'csv' | 'json' | 'ndjson';

/**
 * A table read into memory, column by column (see column.ts): numbers as float64 arrays, other
 * text as dictionary codes. Cells are parsed by the same rules everywhere (bytes.ts), so the
 * schema, the profile and the fitted pipeline agree on what "numeric" means.
 */
export interface Table {
  /** File name (or `<stdin>`, a dataset's name) used in error messages. */
  source: string;
  format: TableFormat;
  columns: string[];
  /** One column per name of `columns`. */
  data: Column[];
  rowCount: number;
  /** 1-based source line of each row (CSV line, NDJSON line, or JSON array index + 1). */
  lines: Int32Array;
  /** SHA-256 of the bytes read, when the reader was asked for it. */
  sha256?: string;
}
