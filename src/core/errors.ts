/**
 * The one error vocabulary of medfit. Every failure a user can cause is a `MedfitError` made by a
 * factory in `Errors`, with a stable code (`MEDFIT_ERR_*`), an HTTP status and a CLI exit code, so
 * the CLI and the API edges can each translate it once without guessing.
 *
 * Messages name what is wrong and where (file, line, column, parameter) and never include record
 * values: a clinical table's cells are personal health information.
 */

/** One located problem, e.g. a validation failure at a JSON pointer or a CSV line. */
export interface ErrorDetail {
  /** Where: a JSON pointer, `file:line`, a column name or a parameter name. */
  pointer: string;
  message: string;
}

/**
 * Most located problems an error carries: a hostile body with millions of bad values gets the
 * first ones and a count, not an answer of hundreds of megabytes.
 */
export const MAX_PROBLEMS = 100;

/** Stable error codes; scripts may match on them. */
export type ErrorCode =
  | 'MEDFIT_ERR_USAGE'
  | 'MEDFIT_ERR_BAD_REQUEST'
  | 'MEDFIT_ERR_BAD_DATA'
  | 'MEDFIT_ERR_BAD_PARAM'
  | 'MEDFIT_ERR_NOT_FOUND'
  | 'MEDFIT_ERR_MANIFEST'
  | 'MEDFIT_ERR_CANCELLED'
  | 'MEDFIT_ERR_UNAUTHORIZED'
  | 'MEDFIT_ERR_FORBIDDEN'
  | 'MEDFIT_ERR_TOO_LARGE'
  | 'MEDFIT_ERR_UNSUPPORTED_MEDIA'
  | 'MEDFIT_ERR_CONFLICT'
  | 'MEDFIT_ERR_UNAVAILABLE'
  | 'MEDFIT_ERR_INTERNAL';

const STATUS: Record<ErrorCode, number> = {
  MEDFIT_ERR_USAGE: 400,
  MEDFIT_ERR_BAD_REQUEST: 400,
  MEDFIT_ERR_BAD_DATA: 422,
  MEDFIT_ERR_BAD_PARAM: 400,
  MEDFIT_ERR_NOT_FOUND: 404,
  MEDFIT_ERR_MANIFEST: 422,
  MEDFIT_ERR_CANCELLED: 409,
  MEDFIT_ERR_UNAUTHORIZED: 401,
  MEDFIT_ERR_FORBIDDEN: 403,
  MEDFIT_ERR_TOO_LARGE: 413,
  MEDFIT_ERR_UNSUPPORTED_MEDIA: 415,
  MEDFIT_ERR_CONFLICT: 409,
  MEDFIT_ERR_UNAVAILABLE: 503,
  MEDFIT_ERR_INTERNAL: 500,
};

/** An error medfit raised on purpose, carrying everything an edge needs to report it. */
export class MedfitError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly details: ErrorDetail[];
  /**
   * For a 503: after how many seconds a retry may succeed. The HTTP edges send it as
   * `Retry-After`, so clients and proxies back off instead of hammering a busy server.
   */
  readonly retryAfter: number | undefined;

  /**
   * `options.cause` keeps an underlying error (an engine's own message, which may name server
   * paths) for the server log; the edges never show it to a caller. `options.retryAfter`: see
   * `retryAfter`.
   */
  constructor(code: ErrorCode, message: string, details: ErrorDetail[] = [], options: { cause?: unknown; retryAfter?: number } = {}) {
    super(message, options.cause !== undefined ? { cause: options.cause } : undefined);
    this.name = 'MedfitError';
    this.code = code;
    this.status = STATUS[code];
    this.details = details;
    this.retryAfter = options.retryAfter;
  }

  /**
   * CLI exit code: 2 for anything the user can fix in the command (usage, data, parameters); 1
   * for our bugs and for a service that does not answer (a database or Redis down at start).
   */
  get exitCode(): 1 | 2 {
    return this.code === 'MEDFIT_ERR_INTERNAL' || this.code === 'MEDFIT_ERR_UNAVAILABLE' ? 1 : 2;
  }
}

/** Coded factories, so every place raises the same shape of error for the same problem. */
export const Errors = {
  /** Bad command-line usage: unknown flag, missing argument. */
  usage: (message: string) => new MedfitError('MEDFIT_ERR_USAGE', message),
  /** A malformed protocol request (HTTP 400), e.g. an Open Inference Protocol body of the wrong shape. */
  badRequest: (message: string) => new MedfitError('MEDFIT_ERR_BAD_REQUEST', message),
  /** Data that cannot be used; `where` is `file:line`, `file, column "x"` or similar. */
  badData: (where: string, message: string, details: ErrorDetail[] = []) =>
    new MedfitError('MEDFIT_ERR_BAD_DATA', where ? `${where}: ${message}` : message, details),
  /** One bad value at a JSON pointer of a request (e.g. `/onnx`): `pointer: message`, with the pointer in `details`. */
  badAt: (pointer: string, message: string) => new MedfitError('MEDFIT_ERR_BAD_DATA', `${pointer}: ${message}`, [{ pointer, message }]),
  /** A hyperparameter or option with a bad value; `name` is the parameter. */
  badParam: (name: string, message: string) =>
    new MedfitError('MEDFIT_ERR_BAD_PARAM', `parameter ${name}: ${message}`, [{ pointer: name, message }]),
  /**
   * Bad values at JSON pointers (e.g. `/records/0/age`): the message names the first, as
   * `records.0.age: expected a number`, and counts the rest; `details` holds those collected
   * (callers stop collecting at `MAX_PROBLEMS` and pass how many more there were as `more`).
   */
  badFields: (problems: ErrorDetail[], more = 0) => {
    const first = problems[0]!;
    const rest = problems.length - 1 + more;
    const tail = rest > 0 ? ` (and ${rest} more problem(s))` : '';
    return new MedfitError('MEDFIT_ERR_BAD_DATA', `${first.pointer.slice(1).replaceAll('/', '.')}: ${first.message}${tail}`, problems);
  },
  notFound: (what: string) => new MedfitError('MEDFIT_ERR_NOT_FOUND', `${what} not found`),
  /** A model artifact that is tampered with, incomplete or from an incompatible format. */
  manifest: (dir: string, message: string, cause?: unknown) => new MedfitError('MEDFIT_ERR_MANIFEST', `${dir}: ${message}`, [], { cause }),
  cancelled: (what = 'operation') => new MedfitError('MEDFIT_ERR_CANCELLED', `${what} was cancelled`),
  /** No valid credentials (HTTP 401). */
  unauthorized: (message: string) => new MedfitError('MEDFIT_ERR_UNAUTHORIZED', message),
  /** Valid credentials without the right (HTTP 403). */
  forbidden: (message: string) => new MedfitError('MEDFIT_ERR_FORBIDDEN', message),
  /** A body in a form the route does not take, e.g. a multipart form (HTTP 415). */
  unsupportedMedia: (message: string) => new MedfitError('MEDFIT_ERR_UNSUPPORTED_MEDIA', message),
  /** A body over a configured limit (HTTP 413). */
  tooLarge: (message: string) => new MedfitError('MEDFIT_ERR_TOO_LARGE', message),
  /** A request that conflicts with the resource's state (HTTP 409). */
  conflict: (message: string) => new MedfitError('MEDFIT_ERR_CONFLICT', message),
  /**
   * The service cannot answer now but may soon (shutting down, a model not loaded yet, the
   * metadata store busy or failing; HTTP 503 with `Retry-After: retryAfter`, in whole seconds).
   */
  unavailable: (message: string, retryAfter = 1) => new MedfitError('MEDFIT_ERR_UNAVAILABLE', message, [], { retryAfter: Math.max(1, Math.ceil(retryAfter)) }),
  /** Our failure (HTTP 500); `cause` is kept for the server log only. */
  internal: (message: string, cause?: unknown) => new MedfitError('MEDFIT_ERR_INTERNAL', message, [], { cause }),
};

/**
 * An error as a log field: ours by code and message (written to be shown: no values, and its
 * `cause` left out, since an engine's message can quote inputs), anyone else's by type, message
 * and stack.
 */
export function loggableError(e: unknown): Record<string, unknown> | undefined {
  if (e === undefined) return undefined;
  if (e instanceof MedfitError) return { code: e.code, message: e.message };
  return e instanceof Error ? { type: e.name, message: e.message, stack: e.stack } : { message: String(e) };
}

/** An error's message followed by its causes' (`a: b: c`), for a server log line. */
export function errorChain(e: unknown): string {
  if (!(e instanceof Error)) return String(e);
  return e.cause !== undefined ? `${e.message}: ${errorChain(e.cause)}` : e.message;
}

/** Whether `e` is a MedfitError (also across worker-thread boundaries, where classes are lost). */
export function isMedfitError(e: unknown): e is MedfitError {
  return e instanceof MedfitError;
}

/** Plain-object form of an error, for crossing a worker boundary with `postMessage`. */
export interface SerializedError {
  code: ErrorCode;
  message: string;
  details: ErrorDetail[];
}

/** Serializes any thrown value; unknown errors become internal ones without their stack. */
export function serializeError(e: unknown): SerializedError {
  if (e instanceof MedfitError) return { code: e.code, message: e.message, details: e.details };
  const message = e instanceof Error ? e.message : String(e);
  return { code: 'MEDFIT_ERR_INTERNAL', message, details: [] };
}

/** Rebuilds an error serialized by `serializeError`. */
export function deserializeError(s: SerializedError): MedfitError {
  return new MedfitError(s.code, s.message, s.details);
}
