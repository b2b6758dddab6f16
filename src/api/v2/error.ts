import { Errors, type MedfitError } from '../../core/index.js';

/** A 400: the request is malformed. Messages name fields and sizes, never tensor values (PHI). */
export const badRequest = (message: string): MedfitError => Errors.badRequest(message);
