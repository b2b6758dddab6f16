import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { Errors, type RawRecord } from '../core/index.js';
import { ONNX_FILE, discardUpload, saveUpload, sha256, type UploadDeclaration } from '../registry/index.js';
import { checkUploadIsolated } from '../serve/index.js';
import type { SequencePrep } from '../sequence/index.js';
import { listingSha256, type ModelVersionRecord, type Stage } from '../store/index.js';
import { requireAnyScope, requireScope } from './auth.js';
import { clientGone } from './drain.js';
import { FHIR_BODY_TYPES, installFhirBody, isFhirBody, notAnObject, predictFhir } from './fhir-predict.js';
import { MAX_EXPLAIN_RECORDS } from './models-service.js';
import type { Services } from './services.js';

const NAME = '^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$';
/** The path parameters of `/v1/models/{name}` routes (the stream routes take the same). */
export const nameParams = { type: 'object', required: ['name'], properties: { name: { type: 'string', pattern: NAME } } } as const;
/** The path parameters of `/v1/models/{name}/versions/{v}` routes. */
export const versionParams = {
  type: 'object',
  required: ['name', 'v'],
  properties: { name: { type: 'string', pattern: NAME }, v: { type: 'string', pattern: '^[1-9][0-9]{0,8}$' } },
} as const;
const predictBody = {
  type: 'object',
  description:
    'Table models take `records` (one object of feature values each). Sequence models take raw sensor `samples` (`{"t": …, "ax": …}`: the time as in training, ISO 8601 or a number, and channel values), optionally with the stream\'s `subject` and `session`; the server resamples, filters, normalises and windows them as in training and answers one prediction per window (`start`, `end`, then `label` and `probabilities`, `value`, or `values`).',
  additionalProperties: false,
  properties: {
    records: { type: 'array', minItems: 1, maxItems: 100_000, items: { type: 'object' }, description: 'table models: one object of feature values per row' },
    samples: { type: 'array', minItems: 1, items: { type: 'object' }, description: 'sequence models: raw samples in time order, each with the time and channel values' },
    subject: { type: 'string', maxLength: 256, description: 'sequence models: the subject of samples that do not name one' },
    session: { type: 'string', maxLength: 256, description: 'sequence models: the session of samples that do not name one' },
    explain: {
      type: 'boolean',
      description:
        `table models trained by medfit: with \`true\`, each prediction also has \`explanation\`: \`{base, contributions, space, method}\`, where \`contributions\` holds one value per input column (a categorical column's one-hot features and a \`__missing\` indicator are counted in their column) and \`base\` plus the contributions is the model's raw output in \`space\`: \`log-odds\` of the positive class (binary), each class's \`logit\` (multiclass: \`base\` and \`contributions\` are then one entry per class label, the contributions one map per class), or the \`value\` (regression; one entry per output for several). \`method\`: \`tree-shap\` (gbdt: exact path-dependent TreeSHAP over the training rows' node counts), \`linear\` (coefficient × (feature value − its training mean); numeric columns are standardised), \`sampling-shapley\` (mlp, ensembles and calibrated models, on their own output: Shapley values against the training means, estimated from seeded antithetic permutations of the columns; reproducible). The probabilities or values of an explained request come from the training engine in double precision, so they are exactly what the explanation adds up to (they agree with the ONNX Runtime answer to about 1e-6). At most ${MAX_EXPLAIN_RECORDS} records per request. Sequence and uploaded ONNX models: 400; versions trained before explanations existed: 422, retrain them.`,
    },
  },
} as const;

/**
 * What a client needs to use a sequence model: the samples `/v1` predict takes, and for V2 the
 * windows (`[batch, steps, channels]`, FP32) with the normalisation to apply first.
 */
function sequenceView(p: SequencePrep, family: string) {
  return {
    columns: p.columns,
    timeUnit: p.timeUnit,
    channels: p.channels,
    rate: p.rate,
    window: p.window,
    stride: p.stride,
    maxGap: p.maxGap,
    ...(p.label !== undefined ? { label: p.label } : {}),
    ...(p.filter !== undefined ? { filter: p.filter } : {}),
    normalisation: { mean: p.mean, std: p.std },
    v2: {
      input: { name: 'input', datatype: 'FP32', shape: [-1, p.window, p.channels.length] },
      description:
        `V2 inference takes windows already resampled to ${p.rate} Hz${p.filter ? ', filtered' : ''} and normalised ((value - mean) / std per channel, missing values 0), ` +
        `${p.window} steps × ${p.channels.length} channels (${p.channels.join(', ')}) each, step-major` +
        (family === 'window-gbdt' ? '; the server computes the window features' : '') +
        '. Raw samples go to POST /v1/models/{name}/predict.',
    },
  };
}

/** A version's headline cross-validated score (AUROC, else accuracy; R² for regression), for lists. */
function headline(v: ModelVersionRecord): { metric: string; mean: number; std: number } | undefined {
  const cv = (v.metrics as { cv?: Record<string, { mean: number; std: number }> }).cv;
  for (const metric of v.task === 'regression' ? ['r2'] : ['auroc', 'accuracy']) {
    const s = cv?.[metric];
    if (s && typeof s.mean === 'number') return { metric, mean: s.mean, std: s.std };
  }
  return undefined;
}

function summary(v: ModelVersionRecord) {
  const score = headline(v);
  return { name: v.name, version: v.version, stage: v.stage, source: v.source, family: v.family, task: v.task, created: v.created, ...(score ? { score } : {}) };
}

/** `/v1/models`: the registry (versions, stages, lineage), uploads of ONNX models, predictions. */
export async function modelRoutes(app: FastifyInstance, s: Services): Promise<void> {
  app.get('/v1/models', { schema: { summary: 'List models (read or predict scope: a predicting client picks a model here)', tags: ['models'] } }, async (req) => {
    const p = requireAnyScope(req, ['read', 'predict']);
    const byName = new Map<string, ModelVersionRecord[]>();
    for (const v of await s.store.listModelVersions(p.projectId)) byName.set(v.name, [...(byName.get(v.name) ?? []), v]);
    return {
      models: [...byName].map(([name, versions]) => ({
        name,
        versions: versions.length,
        latest: versions[versions.length - 1]!.version,
        production: versions.find((v) => v.stage === 'production')?.version ?? null,
        task: versions[versions.length - 1]!.task,
      })),
    };
  });

  app.get('/v1/models/:name', { schema: { summary: 'A model and its versions', tags: ['models'], params: nameParams } }, async (req) => {
    const p = requireScope(req, 'read');
    const { name } = req.params as { name: string };
    const versions = await s.store.listModelVersions(p.projectId, name);
    if (!versions.length) throw Errors.notFound(`model "${name}"`);
    return { name, versions: versions.map(summary) };
  });

  app.get(
    '/v1/models/:name/versions/:v',
    {
      schema: {
        summary: 'A model version: metrics, curves, hyperparameters, schema, lineage (with the predict scope only: what predicting needs)',
        description:
          'With the `read` (or `admin`) scope: the whole version: summary, target, hyperparameters, metrics, evaluation (curves, thresholds, calibration), schema, features, input columns with their fill values, sequence preparation, signature, lineage (dataset, its SHA-256, job) and engine versions. ' +
          'A key with the `predict` scope but neither `read` nor `admin` gets only what a client needs to predict (a prediction form): `name`, `version`, `stage`, `source`, `family`, `task`, `target` (`column`, `task`, `classes`), `schema`, `features`, `inputColumns`, `sequence` and `signature` for a trained model; `inputs`, `outputs`, `features` and `classes` for an uploaded one. No evaluation, metrics, hyperparameters, lineage or engine versions.',
        tags: ['models'],
        params: versionParams,
      },
    },
    async (req) => {
      const p = requireAnyScope(req, ['read', 'predict']);
      const { name, v } = req.params as { name: string; v: string };
      const rec = await s.models.resolve(p.projectId, name, v);
      // A predict-only key (a prediction form, a device) reads the input side, not how the model
      // was made or how well it scores.
      const full = p.scopes.includes('read') || p.scopes.includes('admin');
      const lineage = { dataset: rec.datasetId, datasetSha256: rec.datasetSha256, job: rec.jobId, created: rec.created };
      const d = await s.models.details(rec);
      const ident = { name: rec.name, version: rec.version, stage: rec.stage, source: rec.source, family: rec.family, task: rec.task };
      if (d.source === 'uploaded') {
        const info = d.info;
        const io = { inputs: info.inputs, outputs: info.outputs, features: info.features, classes: info.classes ?? null };
        return full ? { ...summary(rec), ...io, lineage } : { ...ident, ...io };
      }
      const m = d.manifest;
      const features = m.pipeline?.features ?? m.sequence!.channels;
      // What each input column becomes when absent (the training median or most frequent value)
      // and the categories the model knows: what a prediction form offers and pre-fills.
      const inputColumns = m.pipeline
        ? { inputColumns: m.pipeline.steps.map((st) => ({ column: st.column, kind: st.kind, fill: st.fill, ...(st.kind === 'categorical' ? { categories: st.categories } : {}) })) }
        : {};
      const sequence = m.sequence ? { sequence: sequenceView(m.sequence, m.model.family) } : {};
      if (!full) {
        const target = { column: m.target.column, task: m.target.task, ...(m.target.classes ? { classes: m.target.classes } : {}) };
        return { ...ident, target, schema: m.schema, features, ...inputColumns, ...sequence, signature: m.signature };
      }
      return {
        ...summary(rec),
        target: m.target,
        hyperparameters: m.model.params,
        // The record's summary (CV means, leaderboard, warnings) with what only the manifest keeps:
        // the fold count, each output's CV metrics and the scores on a separate test file.
        metrics: {
          ...rec.metrics,
          folds: m.metrics.cv.folds,
          ...(m.metrics.cv.outputs ? { outputs: m.metrics.cv.outputs } : {}),
          ...(m.metrics.test ? { test: m.metrics.test } : {}),
        },
        evaluation: d.evaluation,
        schema: m.schema,
        features,
        ...inputColumns,
        ...sequence,
        signature: m.signature,
        lineage,
        engines: m.engines,
      };
    },
  );

  app.post(
    '/v1/models/:name/versions/:v/stage',
    {
      schema: {
        summary: 'Move a version to a stage (production archives the previous production version)',
        tags: ['models'],
        params: versionParams,
        body: { type: 'object', required: ['stage'], additionalProperties: false, properties: { stage: { type: 'string', enum: ['none', 'staging', 'production', 'archived'] } } },
      },
    },
    async (req) => {
      const p = requireScope(req, 'train');
      const { name, v } = req.params as { name: string; v: string };
      const rec = await s.models.resolve(p.projectId, name, v);
      const updated = await s.store.setStage(p.projectId, name, rec.version, (req.body as { stage: Stage }).stage);
      s.models.invalidate(p.projectId, name);
      req.auditEntry = { action: 'model.stage', resource: `model:${name}/${rec.version}` };
      return summary(updated!);
    },
  );

  app.post(
    '/v1/models',
    {
      // Base64 is 4/3 of the file: the upload limit applies to the model file itself.
      bodyLimit: Math.ceil((s.config.maxUploadBytes * 4) / 3) + 64 * 1024,
      // The setting a 413 names (see errors.ts).
      config: { limitVar: 'MEDFIT_MAX_UPLOAD_MB' },
      schema: {
        summary: 'Upload your own ONNX model (one FP32 input [-1, features])',
        tags: ['models'],
        body: {
          type: 'object',
          required: ['name', 'onnx', 'task', 'features'],
          additionalProperties: false,
          properties: {
            name: { type: 'string', pattern: NAME },
            onnx: { type: 'string', description: 'the .onnx file, base64', minLength: 4 },
            task: { type: 'string', enum: ['binary', 'multiclass', 'regression'] },
            features: { type: 'array', items: { type: 'string', minLength: 1 }, minItems: 1, maxItems: 100_000 },
            classes: { type: 'array', items: { type: 'string' }, minItems: 2, uniqueItems: true },
            output: { type: 'string', description: 'the output tensor holding probabilities or values (default: the first)' },
          },
        },
      },
    },
    async (req, reply) => {
      const p = requireScope(req, 'train');
      const b = req.body as { name: string; onnx: string; task: UploadDeclaration['task']; features: string[]; classes?: string[]; output?: string };
      const declaration: UploadDeclaration = { task: b.task, features: b.features, ...(b.classes ? { classes: b.classes } : {}), ...(b.output !== undefined ? { output: b.output } : {}) };
      const bytes = Buffer.from(b.onnx, 'base64');
      // Recorded before checking so that refused uploads are in the audit trail too.
      req.auditEntry = { action: 'model.upload', resource: `model:${b.name}` };
      // Checked (no external data, known operator domains, the declared signature), re-encoded and
      // proven in ONNX Runtime in a child process with time and memory limits; ONNX Runtime's own
      // messages go to the log only. Nothing is stored before this succeeds.
      const prepared = await checkUploadIsolated(bytes, declaration, {
        limits: s.config.uploadCheck,
        log: (message) => req.log.warn({ model: b.name }, message),
      });
      const rel = join('models', p.projectId, `upload-${randomUUID()}`);
      const dir = join(s.config.dataDir, rel);
      const saved = saveUpload(dir, prepared, { key: s.config.manifestKey });
      // In storage before its version exists: every replica can load a version it lists.
      const stored = await s.blobs.putDir(rel, dir).catch((e: unknown) => {
        discardUpload(dir);
        throw e;
      });
      const rec = await s.store.createModelVersion({
        projectId: p.projectId,
        name: b.name,
        source: 'uploaded',
        family: 'onnx',
        task: b.task,
        dir: rel,
        jobId: null,
        datasetId: null,
        datasetSha256: null,
        // What is served (the checked, re-encoded model) and what was sent, which may differ.
        metrics: { onnxSha256: saved.files[ONNX_FILE]!, uploadSha256: sha256(bytes) },
        filesSha256: listingSha256(stored),
      }).catch(async (e: unknown) => {
        discardUpload(dir);
        await s.blobs.remove(rel).catch(() => undefined);
        throw e;
      });
      s.models.invalidate(p.projectId, rec.name);
      req.auditEntry = { action: 'model.upload', resource: `model:${rec.name}/${rec.version}` };
      return reply.code(201).send(summary(rec));
    },
  );

  const predict = async (req: FastifyRequest, reply: FastifyReply, version: string | undefined) => {
    const p = requireScope(req, 'predict');
    const { name } = req.params as { name: string };
    const rec = await s.models.resolve(p.projectId, name, version);
    // FHIR resources in (a Bundle of a model trained from a feature spec), RiskAssessments out.
    if (isFhirBody(req)) return predictFhir(s, req, reply, p, rec);
    // A body of no JSON media type (none, text/plain) met no schema: refused as the schema did.
    if (req.body === null || typeof req.body !== 'object') throw notAnObject();
    const body = req.body as { records?: RawRecord[]; samples?: unknown[]; subject?: string; session?: string; explain?: boolean };
    if (body.records !== undefined && body.samples !== undefined) throw Errors.badRequest('send either "records" (a table model) or "samples" (a sequence model), not both');
    if (body.samples !== undefined) {
      if (body.explain === true) throw Errors.badParam('/explain', 'explanations are available for table models trained by medfit (sent as "records"), not for sensor samples');
      req.auditEntry = { action: 'model.predict', resource: `model:${name}/${rec.version}`, rows: body.samples.length };
      const out = await s.models.predictSamples(rec, { samples: body.samples, ...(body.subject !== undefined ? { subject: body.subject } : {}), ...(body.session !== undefined ? { session: body.session } : {}) });
      s.metrics.countPredictions(p.projectId, name, String(rec.version), 'v1', out.windows);
      return { model: { name, version: rec.version }, predictions: out.predictions, warnings: out.warnings.map((w) => w.message) };
    }
    if (body.records === undefined) throw Errors.badFields([{ pointer: '/records', message: 'is missing: send "records" (a table model) or "samples" (a sequence model)' }]);
    if (body.subject !== undefined || body.session !== undefined) throw Errors.badRequest('"subject" and "session" go with "samples" (a sequence model), not with "records"');
    const records = body.records;
    // Recorded before predicting so that refused attempts are in the audit trail too.
    req.auditEntry = { action: 'model.predict', resource: `model:${name}/${rec.version}`, rows: records.length };
    const explain = body.explain === true;
    // An explanation is seconds of the main thread's time: a client that goes away (the
    // connection closes before the answer is sent) takes its request out of the queue or stops
    // it at its next slice, so it frees its place for the next.
    const gone = explain ? clientGone(req, reply) : undefined;
    let out: Awaited<ReturnType<typeof s.models.predict>>;
    try {
      out = await s.models.predict(rec, records, { explain, signal: gone?.signal });
    } finally {
      gone?.done();
    }
    const { predictions, warnings } = out;
    s.metrics.countPredictions(p.projectId, name, String(rec.version), 'v1', records.length);
    return { model: { name, version: rec.version }, predictions, ...(warnings.length ? { warnings: warnings.map((w) => w.message) } : {}) };
  };
  installFhirBody(app, ['/v1/models/:name/predict', '/v1/models/:name/versions/:v/predict']);
  // The JSON body is validated by its schema; a FHIR body is a stream the FHIR reader checks.
  const predictBodies = { content: { 'application/json': { schema: predictBody }, ...FHIR_BODY_TYPES } };
  app.post('/v1/models/:name/predict', { schema: { summary: 'Predict raw records (table models, optionally explained) or raw sensor samples (sequence models) with the production (else newest) version; or a FHIR Bundle (application/fhir+json) with a model trained from FHIR, answered with RiskAssessments', tags: ['predict'], params: nameParams, body: predictBodies } }, (req, reply) =>
    predict(req, reply, undefined),
  );
  app.post('/v1/models/:name/versions/:v/predict', { schema: { summary: 'Predict raw records (table models, optionally explained) or raw sensor samples (sequence models) with a version; or a FHIR Bundle (application/fhir+json) with a model trained from FHIR, answered with RiskAssessments', tags: ['predict'], params: versionParams, body: predictBodies } }, (req, reply) =>
    predict(req, reply, (req.params as { v: string }).v),
  );
}
