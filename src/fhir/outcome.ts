import type { OperationOutcome } from '@medplum/fhirtypes';

/** FHIR `IssueType` codes for the HTTP statuses medfit answers with. */
type IssueCode = NonNullable<OperationOutcome['issue']>[number]['code'];
const ISSUE_CODES: Record<number, IssueCode> = {
  400: 'invalid',
  401: 'login',
  403: 'forbidden',
  404: 'not-found',
  409: 'conflict',
  412: 'incomplete',
  413: 'too-long',
  415: 'not-supported',
  422: 'processing',
  503: 'transient',
};

/**
 * An error as a FHIR R4 OperationOutcome, the answer FHIR clients expect from a request they sent
 * with a FHIR content type: the message as the first issue's `diagnostics` (medfit's messages
 * never hold record values) with the first located problem's place as its `expression`, then one
 * issue per further located problem.
 */
export function operationOutcome(status: number, message: string, details: Array<{ pointer: string; message: string }> = []): OperationOutcome {
  const code: IssueCode = ISSUE_CODES[status] ?? (status >= 500 ? 'exception' : 'invalid');
  const severity = status >= 500 ? 'fatal' : 'error';
  const at = (pointer: string) => (pointer ? { expression: [pointer] } : {});
  const [first, ...rest] = details.slice(0, 100);
  const issue: NonNullable<OperationOutcome['issue']> = [{ severity, code, diagnostics: message, ...(first ? at(first.pointer) : {}) }];
  for (const d of rest) issue.push({ severity, code, diagnostics: d.message, ...at(d.pointer) });
  return { resourceType: 'OperationOutcome', issue };
}

/**
 * FHIR's media types and how a body of each is read: a Bundle (`application/fhir+json`;
 * `application/json+fhir` is DSTU2's name, still sent by some clients) or bulk-export NDJSON.
 */
export const FHIR_MEDIA_TYPES: Readonly<Record<string, 'bundle' | 'ndjson'>> = {
  'application/fhir+json': 'bundle',
  'application/json+fhir': 'bundle',
  'application/fhir+ndjson': 'ndjson',
};

/** How a body of this `Content-Type` is read, when it is one of FHIR's; undefined otherwise. */
export function fhirMediaKind(contentType: string | undefined): 'bundle' | 'ndjson' | undefined {
  const type = (contentType ?? '').split(';')[0]!.trim().toLowerCase();
  return Object.hasOwn(FHIR_MEDIA_TYPES, type) ? FHIR_MEDIA_TYPES[type] : undefined;
}

/** Whether a request's media type is one of FHIR's (so its errors are answered as OperationOutcome). */
export function isFhirMediaType(contentType: string | undefined): boolean {
  return fhirMediaKind(contentType) !== undefined;
}
