/** Messages between `checkUploadIsolated` and its child process (internal to `src/serve`). */

/**
 * What an uploaded model must do in the check to be served, since the server then loads and runs
 * it in its own process: load within `loadSeconds`, and run `runRows` rows (the most the server
 * runs at once for such a model: larger requests go in runs of that size) within `runSeconds`.
 * Sizes computed from the row count are thereby bounded; sizes computed from input values are
 * refused by the graph check (models/onnx/validate.ts).
 */
export const UPLOAD_SERVING_LIMITS = Object.freeze({ loadSeconds: 2, runRows: 1024, runSeconds: 1 });
import type { SerializedError } from '../core/index.js';
import type { PreparedUpload, UploadDeclaration } from '../registry/index.js';

/** What the child receives, once: the uploaded bytes and their declaration. */
export interface CheckRequest {
  bytes: Uint8Array;
  declaration: UploadDeclaration;
}

/**
 * What the child sends: `prepared` (the checked, re-encoded model, sent before ONNX Runtime sees
 * it), then `ok`; or `error` (our message for the caller, ONNX Runtime's text in `log` for the
 * server log) at any point.
 */
export type CheckReply = { type: 'prepared'; prepared: PreparedUpload } | { type: 'ok' } | { type: 'error'; error: SerializedError; log?: string };
