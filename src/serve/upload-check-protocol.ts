/** Messages between `checkUploadIsolated` and its child process (internal to `src/serve`). */
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
