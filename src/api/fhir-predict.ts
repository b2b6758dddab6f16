/**
 * FHIR in the predict path: a model trained from a feature spec evaluates the spec on a client's
 * FHIR resources (a Bundle sent as `application/fhir+json`, or what a CDS Hooks request brings)
 * and predicts the rows through the normal predict service; the answer is a Bundle of R4
 * RiskAssessments (or, for CDS Hooks, cards: see cds-hooks.ts).
 *
 * Nothing here is stored: the resources live for the request. They are not de-identified: the
 * features are the same either way (the builder pools ages over 89 itself, and de-identified
 * training data had its index date shifted with the patient's dates, so intervals, the only thing
 * a feature reads from dates, did not change).
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { Readable } from 'node:stream';
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import { Errors, MedfitError, type RawRecord, type Warning } from '../core/index.js';
import { FHIR_MEDIA_TYPES, FeatureBuilder, featureColumns, fhirMediaKind, isFhirMediaType, labelWindow, outcomeConcept, readResourcesFromStream, riskAssessmentBundle, type FeatureSpec, type ResourceItem } from '../fhir/index.js';
import type { ExplainedPrediction, Manifest, Prediction } from '../registry/index.js';
import type { ModelVersionRecord } from '../store/index.js';
import type { Principal } from './auth.js';
import type { Services } from './services.js';
import { limitedBody } from './drain.js';

/** The predict routes' body schemas for the FHIR media types (OpenAPI shows them; the reader checks the body). */
export const FHIR_BODY_TYPES = Object.fromEntries(
  Object.entries(FHIR_MEDIA_TYPES).map(([type, kind]) => [
    type,
    {
      schema: {
        description:
          kind === 'bundle'
            ? 'A FHIR R4 Bundle (any type) of one or more patients\' resources (Patient, Observation, Condition), for a model trained from FHIR with a feature spec; `?index=YYYY-MM-DD` sets the index date (default today). Answered with an application/fhir+json collection Bundle of RiskAssessments, one per Patient; errors are OperationOutcomes.'
            : 'FHIR R4 resources as NDJSON (one resource or Bundle a line), as application/fhir+json takes a Bundle.',
      },
    },
  ]),
);

/** Whether a request's body is FHIR (a media type of `FHIR_BODY_TYPES`), and so a FHIR prediction. */
export function isFhirBody(req: FastifyRequest): boolean {
  return isFhirMediaType(req.headers['content-type']);
}

/** Resources evaluated between yields to the event loop (a large Bundle must not hold up other requests). */
const YIELD_EVERY = 500;

/** A version that can answer in FHIR terms: trained by medfit from a feature spec, a classifier. */
export interface FhirModel {
  rec: ModelVersionRecord;
  manifest: Manifest;
  spec: FeatureSpec;
  classes: string[];
  /** The evaluation file (curves: the risk bands of CDS cards), null when the version has none. */
  evaluation: unknown;
}

/** What each version is on the FHIR side, per server: versions never change once saved, so each is read once. */
const verdicts = new WeakMap<Services, Map<string, FhirModel | MedfitError>>();

/**
 * The FHIR side of a version, or a 422 saying why it has none: an uploaded model, a model trained
 * from a table (no feature spec in its manifest), or a regression (a RiskAssessment carries
 * probabilities of outcomes). Read from the version's directory once (a failure to read, a 500,
 * is tried again next time).
 */
export async function fhirModel(s: Services, rec: ModelVersionRecord): Promise<FhirModel> {
  let cache = verdicts.get(s);
  if (!cache) verdicts.set(s, (cache = new Map()));
  const key = `${rec.projectId}\u0000${rec.name}\u0000${rec.version}\u0000${rec.dir}`;
  let v = cache.get(key);
  if (v === undefined) {
    try {
      v = await readFhirModel(s, rec);
    } catch (e) {
      if (!(e instanceof MedfitError) || e.status >= 500) throw e;
      v = e;
    }
    if (cache.size > 10_000) cache.clear();
    cache.set(key, v);
  }
  if (v instanceof MedfitError) throw v;
  return v;
}

async function readFhirModel(s: Services, rec: ModelVersionRecord): Promise<FhirModel> {
  const what = `model "${rec.name}" version ${rec.version}`;
  const d = await s.models.details(rec);
  if (d.source !== 'trained') throw Errors.badData('', `${what} is an uploaded ONNX model; FHIR predictions need a model trained from FHIR resources with a feature spec`);
  const m = d.manifest;
  if (!m.fhir) throw Errors.badData('', `${what} was not trained from FHIR resources (its manifest has no feature spec); send its input columns as {"records": [...]} with Content-Type application/json`);
  if (m.task === 'regression' || !m.target.classes) throw Errors.badData('', `${what} is a regression model; a RiskAssessment gives probabilities of outcomes, so FHIR predictions need a classifier`);
  return { rec, manifest: m, spec: m.fhir.features, classes: m.target.classes, evaluation: d.evaluation };
}

/** One patient's features and prediction. */
export interface PatientPrediction {
  /** The Patient as the request named it: `Patient/<id>`, or its Bundle entry's fullUrl when it has no id. */
  subject: string;
  /** The model's input record (feature column → value; a missing feature left out, so it is imputed). */
  record: RawRecord;
  /** `Observation/<id>`, `Condition/<id>`: the resources whose values went into the features. */
  basis: string[];
  prediction: Prediction | ExplainedPrediction;
}

/** Options of `predictPatients`. */
export interface PatientPredictOptions {
  /** The index date (`YYYY-MM-DD`): features from data at or before it. */
  index: string;
  explain?: boolean;
  signal?: AbortSignal | undefined;
  /**
   * Most resources read (a 413 past it): a gzip body is decompressed by the reader, so its size
   * limit alone does not bound what it holds.
   */
  maxResources?: number;
  /** Called with the number of patients once the features are built (before predicting): the audit entry's rows. */
  onRows?: (rows: number) => void;
}

/**
 * Evaluates a FHIR model's feature spec on resources (one row per Patient, as in training, with the
 * index date given) and predicts the rows through the predict service (explained when asked).
 * Bad resources (no or an unknown resourceType, an Observation of a missing Patient, a bad date,
 * a unit that cannot be converted) are the readers' and the builder's 422s, naming the place.
 */
export async function predictPatients(s: Services, fm: FhirModel, items: AsyncIterable<ResourceItem> | Iterable<ResourceItem>, opts: PatientPredictOptions): Promise<{ patients: PatientPrediction[]; warnings: Warning[] }> {
  const builder = new FeatureBuilder(fm.spec, { index: opts.index, basis: true });
  const subjects = new Map<string, string>();
  let source = 'the request';
  let n = 0;
  for await (const item of items) {
    if (n === 0) source = item.source;
    if (opts.maxResources !== undefined && n >= opts.maxResources) {
      throw Errors.tooLarge(`${source} holds more than ${opts.maxResources} resources, more than a request body of the size limit can hold uncompressed; send fewer patients a request`);
    }
    if (++n % YIELD_EVERY === 0) {
      await yieldToLoop();
      if (opts.signal?.aborted) throw Errors.cancelled('the prediction');
    }
    const r = item.resource;
    if (r.resourceType === 'Patient') {
      // How the client named the Patient, under every key the builder may give its row.
      const subject = typeof r.id === 'string' && r.id !== '' ? `Patient/${r.id}` : (item.fullUrl ?? '');
      if (subject) {
        if (typeof r.id === 'string') {
          subjects.set(r.id, subject);
          subjects.set(`Patient/${r.id}`, subject);
        }
        if (item.fullUrl !== undefined) subjects.set(item.fullUrl, subject);
      }
    }
    builder.add(item);
  }
  const table = builder.finish();
  if (table.rows.length === 0) throw Errors.badData(source, 'holds no Patient resource: a prediction is made for each Patient');
  const columns = featureColumns(fm.spec);
  const at = new Map(table.columns.map((c, j) => [c, j]));
  const patientAt = at.get('patient');
  const records: RawRecord[] = table.rows.map((row) => {
    const rec: RawRecord = {};
    for (const c of columns) {
      const j = at.get(c);
      const v = j === undefined ? undefined : (row as unknown[])[j];
      // Absent (null or empty) features are left out: the pipeline imputes them as in training.
      if (v !== undefined && v !== null && v !== '') rec[c] = v;
    }
    return rec;
  });
  opts.onRows?.(records.length);
  const { predictions, warnings } = await s.models.predict(fm.rec, records, { explain: opts.explain === true, signal: opts.signal });
  const patients = records.map((record, i): PatientPrediction => {
    const key = patientAt === undefined ? undefined : (table.rows[i] as unknown[])[patientAt];
    const k = typeof key === 'string' ? key : String(key ?? '');
    const subject = subjects.get(k) ?? (k.includes('/') || k.startsWith('urn:') ? k : `Patient/${k}`);
    return { subject, record, basis: table.basis?.[i] ?? [], prediction: predictions[i]! };
  });
  return { patients, warnings };
}

/** Today (UTC) as `YYYY-MM-DD`: the default index date of a prediction. */
export function todayIso(): string {
  return new Date().toISOString().slice(0, 10);
}

/** `YYYY-MM-DD` that is a real calendar date (no regular expression: it is user input). */
export function isIsoDate(s: string): boolean {
  if (s.length !== 10 || s[4] !== '-' || s[7] !== '-') return false;
  for (const i of [0, 1, 2, 3, 5, 6, 8, 9]) if (s.charCodeAt(i) < 48 || s.charCodeAt(i) > 57) return false;
  const d = new Date(`${s}T00:00:00Z`);
  return !Number.isNaN(d.getTime()) && d.toISOString().slice(0, 10) === s;
}

/**
 * The error the predict routes' body schema gave a body that is not a JSON object, for bodies of
 * a media type no schema is keyed by (no content type, `text/plain`): the schema is per media
 * type since FHIR bodies came, and those answers stay as they were (400, `/ must be object`).
 */
export function notAnObject(): Error {
  return Object.assign(new Error('body must be object'), {
    statusCode: 400,
    validationContext: 'body',
    validation: [{ instancePath: '', schemaPath: '#/type', keyword: 'type', params: { type: 'object' }, message: 'must be object' }],
  });
}

/**
 * Lets the predict routes take FHIR bodies: the body stays a stream (the FHIR reader reads it
 * entry by entry) on those routes; any other route answers 415 as before.
 */
export function installFhirBody(app: FastifyInstance, routes: string[]): void {
  const accepted = new Set(routes);
  app.addContentTypeParser(Object.keys(FHIR_MEDIA_TYPES), (req, payload, done) => {
    if (!accepted.has(req.routeOptions.url ?? '')) return done(Errors.unsupportedMedia(`${req.method} ${req.routeOptions.url ?? req.url.split('?')[0]} does not take FHIR resources`), undefined);
    done(null, payload);
  });
}

/**
 * `POST /v1/models/{name}/predict` with a FHIR Bundle (`application/fhir+json`): the model's
 * feature spec evaluated on the Bundle's resources (index date `?index=YYYY-MM-DD`, default
 * today), one RiskAssessment per Patient, as an `application/fhir+json` collection Bundle.
 * The body limit is the JSON path's (MEDFIT_MAX_BODY_MB); errors are OperationOutcomes (the
 * edge answers a FHIR request in FHIR).
 */
export async function predictFhir(s: Services, req: FastifyRequest, reply: FastifyReply, p: Principal, rec: ModelVersionRecord): Promise<FastifyReply> {
  const name = rec.name;
  // Recorded before anything is read so that refused attempts are in the audit trail too.
  req.auditEntry = { action: 'model.predict', resource: `model:${name}/${rec.version}` };
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > s.config.maxBodyBytes) throw tooLarge(s);
  const query = req.query as Record<string, unknown>;
  let index = todayIso();
  let occurrence = new Date().toISOString();
  if (query['index'] !== undefined) {
    const v = query['index'];
    if (typeof v !== 'string' || !isIsoDate(v)) throw Errors.badParam('index', 'must be a date as YYYY-MM-DD (the index date: features use data up to it)');
    index = v;
    // The assessment is of the patient as of the index date.
    occurrence = v;
  }
  const fm = await fhirModel(s, rec);
  const body = limitedBody(req.body as Readable, s.config.maxBodyBytes, () => tooLarge(s));
  const kind = fhirMediaKind(req.headers['content-type'])!;
  // A gzip body is held to the body limit once inflated too, and so is its count of entries
  // (skipped ones included): a small bomb must not cost the server gigabytes or seconds.
  const limit = s.config.maxBodyBytes;
  const items = readResourcesFromStream(body, BODY_SOURCE, kind, { maxBytes: limit, maxItemBytes: limit, maxItems: Math.ceil(limit / 12) });
  const { patients } = await predictPatients(s, fm, items, {
    index,
    // `{"resourceType":"Patient"}` is 26 bytes: no uncompressed body within the limit holds more.
    maxResources: Math.ceil(s.config.maxBodyBytes / 26),
    onRows: (rows) => {
      req.auditEntry = { action: 'model.predict', resource: `model:${name}/${rec.version}`, rows };
    },
  }).catch((e: unknown) => {
    throw kind === 'bundle' ? located(e) : e;
  });
  s.metrics.countPredictions(p.projectId, name, String(rec.version), 'v1', patients.length);
  const bundle = riskAssessmentBundle({
    model: { name, version: rec.version },
    classes: fm.classes,
    outcome: outcomeConcept(fm.spec, fm.manifest.target.column),
    occurrence,
    when: labelWindow(fm.spec, index),
    patients: patients.map((pt) => ({ subject: pt.subject, probabilities: (pt.prediction as { probabilities: Record<string, number> }).probabilities, basis: pt.basis })),
  });
  return reply.type('application/fhir+json').send(bundle);
}

/** How the readers and the feature builder name the request body in their messages. */
const BODY_SOURCE = 'the request body';

/**
 * A reader's or the builder's error about one entry of the request's Bundle (`the request body,
 * entry 12: …`) with the entry's FHIRPath (`Bundle.entry[12].resource`) as its located detail,
 * which the OperationOutcome carries as the issue's `expression`. Other errors as they are.
 */
export function located(e: unknown): unknown {
  if (!(e instanceof MedfitError) || e.details.length > 0) return e;
  const prefix = `${BODY_SOURCE}, entry `;
  if (!e.message.startsWith(prefix)) return e;
  let end = prefix.length;
  while (end < e.message.length && end - prefix.length < 9 && e.message.charCodeAt(end) >= 48 && e.message.charCodeAt(end) <= 57) end++;
  if (end === prefix.length || e.message[end] !== ':') return e;
  const entry = e.message.slice(prefix.length, end);
  return new MedfitError(e.code, e.message, [{ pointer: `Bundle.entry[${entry}].resource`, message: e.message.slice(end + 1).trim() }]);
}

const tooLarge = (s: Services) => Errors.tooLarge(`request body is larger than the limit of ${s.config.maxBodyBytes} bytes (MEDFIT_MAX_BODY_MB)`);
