import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { MedfitError, loggableError, type ErrorDetail } from '../core/index.js';
import { isFhirMediaType, operationOutcome } from '../fhir/index.js';
import { settleBody } from './drain.js';

/** An RFC 9457 problem document. */
export interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
  errors?: ErrorDetail[];
}

const TITLES: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  409: 'Conflict',
  413: 'Content Too Large',
  415: 'Unsupported Media Type',
  422: 'Unprocessable Content',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
};

/** Sends a problem+json response. */
export function sendProblem(reply: FastifyReply, status: number, detail: string, code = 'MEDFIT_ERR', errors?: ErrorDetail[]): FastifyReply {
  const body: Problem = { type: `urn:medfit:error:${code}`, title: TITLES[status] ?? 'Error', status, detail, ...(errors?.length ? { errors } : {}) };
  return reply.code(status).type('application/problem+json').send(body);
}

/**
 * The one edge handler: every error leaving a route becomes a problem document (or, under /v2, the
 * Open Inference Protocol's `{"error": ...}`). Only MedfitErrors and Fastify's own 4xx errors are
 * shown to the caller; anything else is logged and reported as a plain internal error, never with
 * a stack trace. A 503 that says when to retry carries `Retry-After`; an unread body is read
 * (within bounds) first.
 */
export function installErrorHandling(app: FastifyInstance): void {
  app.setErrorHandler(async (err: FastifyError, req: FastifyRequest, reply: FastifyReply) => {
    const v2 = req.url.startsWith('/v2');
    let status: number;
    let detail: string;
    let code: string;
    let errors: ErrorDetail[] | undefined;
    if (err instanceof MedfitError) {
      status = err.status;
      detail = err.message;
      code = err.code;
      errors = err.details;
      if (status === 503 && err.retryAfter !== undefined) reply.header('retry-after', String(err.retryAfter));
    } else if (err.validation) {
      status = 400;
      code = 'MEDFIT_ERR_VALIDATION';
      errors = err.validation.map((v) => ({
        pointer: `${err.validationContext === 'body' ? '' : `/${err.validationContext ?? ''}`}${v.instancePath}${v.keyword === 'required' ? `/${String((v.params as { missingProperty?: string }).missingProperty ?? '')}` : v.keyword === 'additionalProperties' ? `/${String((v.params as { additionalProperty?: string }).additionalProperty ?? '')}` : ''}`,
        message: v.message ?? 'invalid',
      }));
      detail = `invalid request: ${errors.map((e) => `${e.pointer || '/'} ${e.message}`).join('; ')}`;
    } else if (err.statusCode && err.statusCode >= 400 && err.statusCode < 500) {
      status = err.statusCode;
      code = err.code ?? 'MEDFIT_ERR_REQUEST';
      detail =
        status === 413
          ? `request body is larger than the limit of ${req.routeOptions.bodyLimit} bytes (${(req.routeOptions.config as { limitVar?: string }).limitVar ?? 'MEDFIT_MAX_BODY_MB'})`
          : /prototype property/.test(err.message)
            ? 'body has a key named __proto__ or constructor.prototype; such keys are refused'
            : err.code === 'FST_ERR_CTP_INVALID_JSON_BODY' || err instanceof SyntaxError
              ? 'body is not valid JSON'
              : err.message;
    } else {
      req.log.error({ err: loggableError(err) }, 'internal error');
      status = 500;
      code = 'MEDFIT_ERR_INTERNAL';
      detail = 'internal error; the server log has the details';
    }
    await settleBody(req, reply);
    if (v2) return reply.code(status).send({ error: detail });
    // A FHIR client (its request in a FHIR media type) reads OperationOutcome resources.
    if (isFhirMediaType(req.headers['content-type'])) return reply.code(status).type('application/fhir+json').send(operationOutcome(status, detail, errors));
    return sendProblem(reply, status, detail, code, errors);
  });
  app.setNotFoundHandler((req, reply) => {
    if (req.url.startsWith('/v2')) return reply.code(404).send({ error: `no route ${req.method} ${req.url.split('?')[0]}` });
    return sendProblem(reply, 404, `no route ${req.method} ${req.url.split('?')[0]}`, 'MEDFIT_ERR_NOT_FOUND');
  });
}
