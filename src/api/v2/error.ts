/** An error the V2 routes report as `{"error": message}` with an HTTP status. */
export class V2Error extends Error {
  readonly statusCode: number;
  constructor(statusCode: number, message: string) {
    super(message);
    this.name = 'V2Error';
    this.statusCode = statusCode;
  }
}

/** A 400: the request is malformed. Messages name fields and sizes, never tensor values (PHI). */
export const badRequest = (message: string): V2Error => new V2Error(400, message);
