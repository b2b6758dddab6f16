/**
 * CDS Hooks 2.0 (https://cds-hooks.hl7.org/2.0/): every production model trained from a FHIR
 * feature spec is a `patient-view` CDS Service of the caller's project. Discovery lists them with
 * the prefetch templates their specs need; a service call gathers the patient's resources (from
 * the prefetch, else from the client's FHIR server with the access token the request carries),
 * evaluates the spec as FHIR predictions do, and answers one card: the risk, its band, the
 * features that moved it most (the per-prediction explanation), a link to the model's page.
 *
 * Authentication: the spec has the client send a JWT as `Authorization: Bearer`; medfit's API keys
 * fill that role (the `predict` scope calls a service, `read` or `predict` lists them), so a
 * project's services are seen and called only with its keys.
 *
 * Errors follow the spec where it says something: 412 when the data a service needs is neither
 * prefetched nor fetchable (no `fhirServer` with `fhirAuthorization`, or the server refused or
 * failed), 404 for an unknown service, 400 for a malformed hook request; bodies are RFC 9457
 * problems as on /v1 (the spec leaves error bodies open).
 */
import { randomUUID } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { Errors, MedfitError } from '../core/index.js';
import { featureColumns, isResourceType, outcomeConcept, type FeatureSpec, type Resource, type ResourceItem } from '../fhir/index.js';
import type { ExplainedPrediction, Prediction } from '../registry/index.js';
import type { ModelVersionRecord } from '../store/index.js';
import { requireAnyScope, requireScope } from './auth.js';
import { fhirModel, predictPatients, todayIso, type FhirModel } from './fhir-predict.js';
import type { Services } from './services.js';

/** The one hook the services answer. */
export const CDS_HOOK = 'patient-view';

/** Options of the CDS Hooks routes. */
export interface CdsHooksOptions {
  /**
   * The web app's public base URL (`https://medfit.example.org`), for the cards' links to a model's
   * page. Without it the link is built from the request's Host header, when that is a plain
   * `host[:port]` (anything else: no link), with the request's protocol.
   */
  publicUrl?: string | undefined;
  /** How long one request to a client's FHIR server may take (default 10 s). */
  fhirTimeoutMs?: number;
  /**
   * The origins (`https://ehr.example.org`) of the FHIR servers a hook request's `fhirServer` may
   * name (`MEDFIT_CDS_FHIR_SERVERS`). Any other is not contacted: a caller must not be able to make
   * medfit send requests into the network it runs in. Empty (the default): prefetch only.
   */
  fhirServers?: readonly string[];
}

/** Most pages of one search fetched from a client's FHIR server (a patient's Observations of a few codes). */
const MAX_PAGES = 20;
/** Most features listed on a card. */
const TOP_FEATURES = 3;
/** Specificity the `high` band starts at. */
const HIGH_SPECIFICITY = 0.9;
/** A FHIR id (R4 `id` type): what a patientId must be to go into a URL. */
const FHIR_ID = /^[A-Za-z0-9.-]{1,64}$/;

/** One prefetch template: its key, the resource type it searches or reads, and the query. */
interface Template {
  key: string;
  /** `Patient/{{context.patientId}}` (a read) or `Observation?patient={{context.patientId}}&code=…` (a search). */
  template: string;
  read: boolean;
  /** `Patient` or the searched type. */
  type: string;
  /** The search's parameters after `patient` (system|code lists), for fetching. */
  params: Array<[string, string]>;
}

/** The prefetch templates a spec needs: the Patient, and its Observation and Condition codes. */
export function prefetchTemplates(spec: FeatureSpec): Template[] {
  const out: Template[] = [{ key: 'patient', template: 'Patient/{{context.patientId}}', read: true, type: 'Patient', params: [] }];
  const obsCodes = unique((spec.observations ?? []).flatMap((o) => (Array.isArray(o.code) ? o.code : [o.code])));
  // Patient-scoped searches by `patient`, as the spec's own examples write them: `subject` alone
  // would also match Groups, Devices and Locations of the same id.
  if (obsCodes.length) out.push(search('observations', 'Observation', obsCodes));
  const condCodes = unique((spec.conditions ?? []).flatMap((c) => c.codes));
  if (condCodes.length) out.push(search('conditions', 'Condition', condCodes));
  return out;
}

function search(key: string, type: string, codes: string[]): Template {
  const code = codes.join(',');
  return { key, template: `${type}?patient={{context.patientId}}&code=${code}`, read: false, type, params: [['code', code]] };
}

function unique(xs: string[]): string[] {
  return [...new Set(xs)];
}

/** The risk bands of a binary model, from its cross-validated ROC curve. */
export interface RiskBands {
  /** `moderate` from this probability up: Youden's J threshold (the point maximising sensitivity + specificity − 1). */
  moderate: number;
  /** `high` from this probability up: the lowest threshold whose specificity is at least 90% (never below `moderate`). */
  high: number;
  /** Sensitivity and specificity at each (for the card's explanation). */
  at: { moderate: { sensitivity: number; specificity: number }; high: { sensitivity: number; specificity: number } };
}

/**
 * Risk bands from the stored evaluation's ROC curve (`roc: {fpr, tpr, thresholds}`, out-of-fold
 * predictions of cross-validation, at most 200 points): `moderate` at Youden's J threshold, `high`
 * at the lowest threshold with specificity ≥ 90% (the most sensitive operating point that keeps
 * false alarms at most 1 in 10), raised to `moderate` when it is below. Thresholds come from
 * out-of-fold predictions of the cross-validated models; the served model is refitted on all rows,
 * so they are estimates. Undefined without a curve or with a model no better than chance.
 */
export function riskBands(evaluation: unknown): RiskBands | undefined {
  const roc = (evaluation as { roc?: { fpr?: unknown; tpr?: unknown; thresholds?: unknown } } | null)?.roc;
  if (!roc || !Array.isArray(roc.fpr) || !Array.isArray(roc.tpr) || !Array.isArray(roc.thresholds)) return undefined;
  const fpr = roc.fpr as number[];
  const tpr = roc.tpr as number[];
  const thr = roc.thresholds as number[];
  if (fpr.length !== tpr.length || fpr.length !== thr.length) return undefined;
  let j = -1;
  let bestJ = 0;
  let h = -1;
  for (let i = 0; i < thr.length; i++) {
    const t = thr[i]!;
    // The first threshold is max + 1 (the curve's (0, 0) start): no probability reaches it.
    if (!(typeof t === 'number' && t >= 0 && t <= 1) || typeof fpr[i] !== 'number' || typeof tpr[i] !== 'number') continue;
    const youden = tpr[i]! - fpr[i]!;
    // Ties keep the higher threshold (the first met): the same sensitivity gain with fewer alarms.
    if (youden > bestJ) {
      bestJ = youden;
      j = i;
    }
    // Thresholds decrease along the curve: the last point within the specificity is the most sensitive.
    if (1 - fpr[i]! >= HIGH_SPECIFICITY) h = i;
  }
  if (j < 0) return undefined;
  if (h < 0 || thr[h]! < thr[j]!) h = j;
  const point = (i: number) => ({ sensitivity: tpr[i]!, specificity: 1 - fpr[i]! });
  return { moderate: thr[j]!, high: thr[h]!, at: { moderate: point(j), high: point(h) } };
}

/** The band of a probability. */
export function bandOf(p: number, bands: RiskBands | undefined): 'low' | 'moderate' | 'high' | undefined {
  if (!bands) return undefined;
  return p >= bands.high ? 'high' : p >= bands.moderate ? 'moderate' : 'low';
}

/** A hook request, as the route's schema lets it through. */
interface HookRequest {
  hook: string;
  hookInstance: string;
  fhirServer?: string;
  fhirAuthorization?: { access_token: string; token_type: string; [k: string]: unknown };
  context: { patientId: string; userId?: string; [k: string]: unknown };
  prefetch?: Record<string, unknown>;
}

const hookRequestSchema = {
  type: 'object',
  required: ['hook', 'hookInstance', 'context'],
  properties: {
    hook: { type: 'string', minLength: 1, maxLength: 128 },
    hookInstance: { type: 'string', minLength: 1, maxLength: 256 },
    fhirServer: { type: 'string', minLength: 1, maxLength: 2048 },
    fhirAuthorization: {
      type: 'object',
      required: ['access_token', 'token_type'],
      properties: {
        access_token: { type: 'string', minLength: 1, maxLength: 16384 },
        token_type: { type: 'string' },
        expires_in: { type: 'integer' },
        scope: { type: 'string' },
        subject: { type: 'string' },
        patient: { type: 'string' },
      },
    },
    context: {
      type: 'object',
      required: ['patientId'],
      properties: { patientId: { type: 'string', minLength: 1, maxLength: 64 }, userId: { type: 'string' }, encounterId: { type: 'string' } },
    },
    prefetch: { type: 'object' },
  },
} as const;

/** The request could not get the data it needs: the spec's 412. */
class PreconditionFailed extends Error {}

/** `/cds-services`: CDS Hooks discovery and one `patient-view` service per production FHIR model. */
export async function cdsHooksRoutes(app: FastifyInstance, s: Services, opts: CdsHooksOptions = {}): Promise<void> {
  let publicUrl = opts.publicUrl;
  while (publicUrl?.endsWith('/')) publicUrl = publicUrl.slice(0, -1);
  const timeoutMs = opts.fhirTimeoutMs ?? 10_000;
  const fhirServers = new Set(opts.fhirServers ?? []);

  /** The FHIR side of a production binary version, or undefined when it is not a service (unreadable ones logged). */
  const serviceModel = async (rec: ModelVersionRecord): Promise<FhirModel | undefined> => {
    if (rec.stage !== 'production' || rec.source !== 'trained' || rec.task !== 'binary') return undefined;
    try {
      return await fhirModel(s, rec);
    } catch (e) {
      if (!(e instanceof MedfitError) || e.status >= 500) app.log.error({ model: rec.name, version: rec.version }, 'a production model could not be read for CDS Hooks');
      return undefined;
    }
  };

  app.get('/cds-services', { schema: { summary: 'CDS Hooks discovery: one patient-view service per production model trained from FHIR', tags: ['cds-hooks'] } }, async (req, reply) => {
    const p = requireAnyScope(req, ['predict', 'read']);
    noStore(reply);
    const list: FhirModel[] = [];
    for (const rec of await s.store.listModelVersions(p.projectId)) {
      const fm = await serviceModel(rec);
      if (fm) list.push(fm);
    }
    return { services: list.map(describe) };
  });

  app.post(
    '/cds-services/:id',
    {
      schema: {
        summary: 'Call a CDS Hooks service (patient-view): the model\'s risk for the patient, as a card',
        tags: ['cds-hooks'],
        params: { type: 'object', required: ['id'], properties: { id: { type: 'string', maxLength: 128 } } },
        body: hookRequestSchema,
      },
    },
    async (req, reply) => {
      const p = requireScope(req, 'predict');
      const { id } = req.params as { id: string };
      // A service is a model's production version: resolved as predictions resolve names (cached).
      const rec = (await s.models.versions(p.projectId, id)).find((v) => v.stage === 'production');
      const fm = rec ? await serviceModel(rec) : undefined;
      if (!fm) throw Errors.notFound(`CDS service "${id}"`);
      const body = req.body as HookRequest;
      if (body.hook !== CDS_HOOK) throw Errors.badParam('/hook', `service "${id}" answers the ${CDS_HOOK} hook`);
      const patientId = body.context.patientId;
      // An id of dots only would make `Patient/{{context.patientId}}` a path of its own (`Patient/..`).
      if (!FHIR_ID.test(patientId) || /^\.+$/.test(patientId)) throw Errors.badParam('/context/patientId', 'must be a FHIR id (letters, digits, "-" and ".", at most 64, not only dots)');
      const server = fhirAccess(body, fhirServers);
      req.auditEntry = { action: 'model.predict', resource: `model:${fm.rec.name}/${fm.rec.version}`, rows: 1 };
      noStore(reply);
      let items: ResourceItem[];
      try {
        items = await gather(fm.spec, body, patientId, server, { timeoutMs, maxBytes: s.config.maxBodyBytes });
      } catch (e) {
        if (e instanceof PreconditionFailed) {
          return reply.code(412).type('application/problem+json').send({ type: 'urn:medfit:error:MEDFIT_ERR_PRECONDITION', title: 'Precondition Failed', status: 412, detail: e.message });
        }
        throw e;
      }
      const index = todayIso();
      let explained = true;
      let out;
      try {
        out = await predictPatients(s, fm, items, { index, explain: true });
      } catch (e) {
        // A card without its explanation beats no card: a busy explainer (503) or a version that
        // predates explanations (422, manifest) still gives the risk.
        if (!(e instanceof MedfitError) || !(e.code === 'MEDFIT_ERR_UNAVAILABLE' || e.code === 'MEDFIT_ERR_MANIFEST' || e.details[0]?.pointer === '/explain')) throw e;
        explained = false;
        out = await predictPatients(s, fm, items, { index });
      }
      const patient = out.patients[0]!;
      s.metrics.countPredictions(p.projectId, fm.rec.name, String(fm.rec.version), 'v1', 1);
      return { cards: [card(fm, patient.prediction, patient.record, explained, index, baseUrl(req))] };
    },
  );

  function baseUrl(req: FastifyRequest): string | undefined {
    if (publicUrl) return publicUrl;
    const host = req.host;
    return hostIsPlain(host) ? `${req.protocol}://${host}` : undefined;
  }
}

/** A discovery entry. */
function describe(fm: FhirModel): Record<string, unknown> {
  const { rec, spec, manifest } = fm;
  const outcome = outcomeConcept(spec, manifest.target.column).text ?? manifest.target.column;
  const templates = prefetchTemplates(spec);
  const auroc = (manifest.metrics.cv.metrics as Record<string, { mean: number } | undefined>)['auroc']?.mean;
  const needs = templates.map((t) => t.type).join(', ');
  return {
    hook: CDS_HOOK,
    title: `${outcome} risk (${rec.name})`,
    description: `The risk of ${outcome} estimated by model ${rec.name} v${rec.version} (${manifest.model.family}${typeof auroc === 'number' ? `, cross-validated AUROC ${auroc.toFixed(3)}` : ''}) from the patient's FHIR data, with the features that moved it most.`,
    id: rec.name,
    prefetch: Object.fromEntries(templates.map((t) => [t.key, t.template])),
    usageRequirements: `Needs the patient's ${needs} resources: as the prefetch asks, or through fhirServer with fhirAuthorization (read access to ${needs}). Call with a medfit API key of the project (predict scope) as the Bearer token.`,
  };
}

/**
 * `fhirServer` with its token, when the request gives both (checked) and the server is one medfit
 * may reach (`allowed` origins); undefined when it gives neither.
 */
function fhirAccess(body: HookRequest, allowed: ReadonlySet<string>): { base: URL; token: string } | undefined {
  const auth = body.fhirAuthorization;
  if (auth && body.fhirServer === undefined) throw Errors.badParam('/fhirServer', 'is required with fhirAuthorization');
  if (body.fhirServer === undefined) return undefined;
  let base: URL;
  try {
    base = new URL(body.fhirServer);
  } catch {
    throw Errors.badParam('/fhirServer', 'is not a URL');
  }
  if (base.protocol !== 'https:' && base.protocol !== 'http:') throw Errors.badParam('/fhirServer', 'must be an http(s) URL');
  if (base.username || base.password) throw Errors.badParam('/fhirServer', 'must not hold credentials (the token goes in fhirAuthorization)');
  if (!auth) return undefined;
  if (auth.token_type.toLowerCase() !== 'bearer') throw Errors.badParam('/fhirAuthorization/token_type', 'must be "Bearer"');
  // A server medfit may not reach is not contacted (a caller must not make medfit send requests
  // into its own network): the request is answered from its prefetch, or a 412 says why not.
  if (!allowed.has(base.origin)) return undefined;
  return { base, token: auth.access_token };
}

/**
 * The resources the spec needs, from the prefetch where it has them and from the FHIR server
 * otherwise. A prefetch key with `null` is "no data" (the spec's rule); a missing key, or one
 * holding an OperationOutcome (the client could not prefetch it), is fetched, or is a 412 when
 * there is no server to fetch from. A prefetched search Bundle with a `next` page is completed
 * from the server (412 without one: a partial search would give wrong features).
 */
async function gather(spec: FeatureSpec, body: HookRequest, patientId: string, server: { base: URL; token: string } | undefined, limits: { timeoutMs: number; maxBytes: number }): Promise<ResourceItem[]> {
  const items: ResourceItem[] = [];
  const missing: Template[] = [];
  const prefetch = body.prefetch ?? {};
  const budget = { bytes: limits.maxBytes };
  for (const t of prefetchTemplates(spec)) {
    const has = Object.hasOwn(prefetch, t.key);
    const v = has ? prefetch[t.key] : undefined;
    const failed = isObject(v) && v['resourceType'] === 'OperationOutcome';
    if (has && v === null) continue;
    const source = `prefetch "${t.key}"`;
    if (has && !failed) {
      if (!isObject(v)) throw Errors.badParam(`/prefetch/${t.key}`, t.read ? `must be a ${t.type} resource` : 'must be a searchset Bundle');
      if (t.read) {
        const patient = v['resourceType'] === 'Bundle' ? singlePatient(v, source) : v;
        items.push(patientItem(patient, patientId, source));
        continue;
      }
      if (v['resourceType'] !== 'Bundle') throw Errors.badParam(`/prefetch/${t.key}`, `must be a searchset Bundle (the answer to ${t.type}?patient=…), not a ${typeName(v['resourceType'])}`);
      items.push(...bundleItems(v, source));
      const next = nextLink(v);
      if (next !== undefined) {
        if (!server) throw new PreconditionFailed(`prefetch "${t.key}" is one page of several, and no fhirServer with fhirAuthorization that medfit may reach (MEDFIT_CDS_FHIR_SERVERS) was given to read the rest`);
        items.push(...(await searchPages(server, next, t, limits.timeoutMs, budget)));
      }
      continue;
    }
    missing.push(t);
  }
  if (missing.length > 0 && !server) {
    const keys = missing.map((t) => `"${t.key}" (${t.template})`).join(', ');
    throw new PreconditionFailed(`the request lacks prefetch ${keys}, and no fhirServer with fhirAuthorization that medfit may reach (MEDFIT_CDS_FHIR_SERVERS) was given to fetch it`);
  }
  for (const t of missing) {
    if (t.read) {
      const patient = await fetchJson(server!, new URL(`Patient/${encodeURIComponent(patientId)}`, baseWithSlash(server!.base)), t, limits.timeoutMs, budget);
      items.push(patientItem(patient, patientId, `the FHIR server's ${t.type}`));
    } else {
      const url = new URL(t.type, baseWithSlash(server!.base));
      url.searchParams.set('patient', patientId);
      for (const [k, v] of t.params) url.searchParams.set(k, v);
      items.push(...(await searchPages(server!, url.href, t, limits.timeoutMs, budget)));
    }
  }
  // The Patient first: the feature builder reads Observations of patients it has not met yet,
  // but a reader of this list does not have to think about it.
  return items.sort((a, b) => Number(b.resource.resourceType === 'Patient') - Number(a.resource.resourceType === 'Patient'));
}

/** The Patient as an item, with the context's id when the resource has none; 400 when it is another patient. */
function patientItem(v: Record<string, unknown>, patientId: string, source: string): ResourceItem {
  const resource = checkResource(v, source);
  if (resource.resourceType !== 'Patient') throw Errors.badData(source, `is a ${typeName(resource.resourceType)}, not the Patient`);
  if (resource.id !== undefined && resource.id !== patientId) throw Errors.badData(source, 'is another Patient than context.patientId');
  return { resource: { ...resource, id: patientId }, source, where: 'the Patient' };
}

/** The one Patient of a Bundle (a client may answer a read with a searchset of one). */
function singlePatient(b: Record<string, unknown>, source: string): Record<string, unknown> {
  const patients = bundleItems(b, source).filter((i) => i.resource.resourceType === 'Patient');
  if (patients.length !== 1) throw Errors.badData(source, `holds ${patients.length} Patients; expected the one of context.patientId`);
  return patients[0]!.resource;
}

/** A Bundle's resources as items, each checked as the FHIR readers check them; `outcome` entries (search warnings) skipped. */
function bundleItems(b: Record<string, unknown>, source: string): ResourceItem[] {
  const entries = b['entry'];
  if (entries === undefined) return [];
  if (!Array.isArray(entries)) throw Errors.badData(source, 'entry is not an array');
  const out: ResourceItem[] = [];
  entries.forEach((e: unknown, i) => {
    const where = `entry ${i}`;
    if (!isObject(e)) throw Errors.badData(`${source}, ${where}`, 'is not an object');
    if ((e['search'] as { mode?: unknown } | undefined)?.mode === 'outcome') return;
    if (e['resource'] === undefined) return;
    const resource = checkResource(e['resource'], `${source}, ${where}`);
    const fullUrl = typeof e['fullUrl'] === 'string' ? e['fullUrl'] : undefined;
    out.push({ resource, source, where, ...(fullUrl !== undefined ? { fullUrl } : {}) });
  });
  return out;
}

/** `v` as a resource, or a 422 saying why it is not one (as the FHIR readers say it; never echoing a value). */
function checkResource(v: unknown, where: string): Resource {
  if (!isObject(v)) throw Errors.badData(where, 'resource is not a JSON object');
  const t = v['resourceType'];
  if (t === undefined) throw Errors.badData(where, 'resource has no resourceType');
  if (typeof t !== 'string') throw Errors.badData(where, 'resourceType is not a string');
  if (!isResourceType(t)) throw Errors.badData(where, `unknown resource type ${typeName(t)} (not in FHIR R4)`);
  return v as Resource;
}

/** A resource type for a message: named when it looks like a type name, so that no value is echoed. */
function typeName(t: unknown): string {
  return typeof t === 'string' && t.length <= 64 && /^[A-Za-z]+$/.test(t) ? `"${t}"` : '(not a type name)';
}

function nextLink(b: Record<string, unknown>): string | undefined {
  const links = b['link'];
  if (!Array.isArray(links)) return undefined;
  for (const l of links) if (isObject(l) && l['relation'] === 'next' && typeof l['url'] === 'string') return l['url'];
  return undefined;
}

/** A search's pages from `first` on, following `next` links on the same server. */
async function searchPages(server: { base: URL; token: string }, first: string, t: Template, timeoutMs: number, budget: { bytes: number }): Promise<ResourceItem[]> {
  const items: ResourceItem[] = [];
  let url: URL | undefined = resolveOnServer(server, first, t);
  for (let page = 0; url !== undefined; page++) {
    if (page >= MAX_PAGES) throw new PreconditionFailed(`the FHIR server's ${t.type} search has more than ${MAX_PAGES} pages`);
    const b = await fetchJson(server, url, t, timeoutMs, budget);
    if (b['resourceType'] !== 'Bundle') throw new PreconditionFailed(`the FHIR server answered the ${t.type} search with a ${typeName(b['resourceType'])}, not a Bundle`);
    items.push(...bundleItems(b, `the FHIR server's ${t.type} search, page ${page + 1}`));
    const next = nextLink(b);
    url = next === undefined ? undefined : resolveOnServer(server, next, t);
  }
  return items;
}

/**
 * A link of the server's as a URL on the same server: the token is the client's for its server,
 * and is never sent anywhere else (a page link to another origin is refused).
 */
function resolveOnServer(server: { base: URL }, link: string, t: Template): URL {
  let url: URL;
  try {
    url = new URL(link, baseWithSlash(server.base));
  } catch {
    throw new PreconditionFailed(`a ${t.type} page link is not a URL`);
  }
  if (url.origin !== server.base.origin) throw new PreconditionFailed(`a ${t.type} page link leads away from fhirServer; the access token is not sent there`);
  // The token is for the FHIR endpoint, not for whatever else the host serves.
  if (!url.pathname.startsWith(baseWithSlash(server.base).pathname)) throw new PreconditionFailed(`a ${t.type} page link leads outside fhirServer's path; the access token is not sent there`);
  return url;
}

function baseWithSlash(u: URL): URL {
  return u.pathname.endsWith('/') ? u : new URL(`${u.href}/`);
}

/**
 * GET `url` from the client's FHIR server with its token: 412 when it fails (no answer in time,
 * refused, not JSON, larger than what is left of `budget`). Redirects are not followed (the token
 * would go with them). The server's own messages are not passed on.
 */
async function fetchJson(server: { token: string }, url: URL, t: Template, timeoutMs: number, budget: { bytes: number }): Promise<Record<string, unknown>> {
  let res: Response;
  try {
    res = await fetch(url, { headers: { accept: 'application/fhir+json', authorization: `Bearer ${server.token}` }, redirect: 'manual', signal: AbortSignal.timeout(timeoutMs) });
  } catch (e) {
    const what = (e as Error).name === 'TimeoutError' ? `did not answer within ${timeoutMs / 1000} s` : 'could not be reached';
    throw new PreconditionFailed(`the FHIR server ${what} (reading ${t.type})`);
  }
  if (res.status !== 200) {
    await res.body?.cancel().catch(() => {});
    const why = res.status === 401 || res.status === 403 ? 'refused the access token' : res.status === 404 ? 'has no such resource' : `answered HTTP ${res.status}`;
    throw new PreconditionFailed(`the FHIR server ${why} (reading ${t.type})`);
  }
  const chunks: Buffer[] = [];
  const reader = res.body?.getReader();
  if (reader) {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      budget.bytes -= value.byteLength;
      if (budget.bytes < 0) {
        await reader.cancel().catch(() => {});
        throw new PreconditionFailed(`the FHIR server's ${t.type} data is larger than the limit of one request body (MEDFIT_MAX_BODY_MB)`);
      }
      chunks.push(Buffer.from(value));
    }
  }
  let v: unknown;
  try {
    v = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    throw new PreconditionFailed(`the FHIR server's answer (reading ${t.type}) is not JSON`);
  }
  if (!isObject(v)) throw new PreconditionFailed(`the FHIR server's answer (reading ${t.type}) is not a resource`);
  return v;
}

/** The card of a prediction. */
function card(fm: FhirModel, prediction: Prediction | ExplainedPrediction, record: Record<string, unknown>, explained: boolean, index: string, base: string | undefined): Record<string, unknown> {
  const { rec, spec, manifest } = fm;
  const units = new Map((spec.observations ?? []).filter((o) => o.unit !== undefined).map((o) => [o.name, o.unit!]));
  const outcome = outcomeConcept(spec, manifest.target.column).text ?? manifest.target.column;
  const positive = fm.classes[fm.classes.length - 1]!;
  const probability = (prediction as { probabilities: Record<string, number> }).probabilities[positive]!;
  const bands = riskBands(fm.evaluation);
  const band = bandOf(probability, bands);
  const pct = formatPercent(probability);
  const summary = clip(`${outcome} risk ${pct}${band ? ` (${band})` : ''}: ${rec.name} v${rec.version}`, 139);
  const lines: string[] = [`**Estimated risk of ${md(outcome)}: ${pct}**${band ? `, ${band}` : ''}.`];
  if (bands) {
    const at = (x: { sensitivity: number; specificity: number }) => `sensitivity ${formatPercent(x.sensitivity)}, specificity ${formatPercent(x.specificity)}`;
    lines.push(
      '',
      bands.high > bands.moderate
        ? `Bands from the model's cross-validated evaluation: moderate from ${formatPercent(bands.moderate)} (Youden's J threshold: ${at(bands.at.moderate)}), high from ${formatPercent(bands.high)} (specificity at least 90%: ${at(bands.at.high)}).`
        : `Bands from the model's cross-validated evaluation: high from ${formatPercent(bands.high)} (Youden's J threshold, where specificity is already at least 90%: ${at(bands.at.high)}); no moderate band.`,
    );
  }
  const explanation = (prediction as Partial<ExplainedPrediction>).explanation;
  if (explained && explanation && typeof explanation.base === 'number') {
    const contributions = Object.entries(explanation.contributions as Record<string, number>)
      .filter(([, v]) => v !== 0)
      .sort((a, b) => Math.abs(b[1]) - Math.abs(a[1]))
      .slice(0, TOP_FEATURES);
    if (contributions.length) {
      lines.push('', `What moved the risk most, compared with the training data's average patient (contributions to the log-odds, ${explanation.method}):`, '');
      for (const [feature, v] of contributions) {
        const value = Object.hasOwn(record, feature) ? ` = ${md(formatValue(record[feature], units.get(feature)))}` : ' (no data, imputed)';
        lines.push(`- **${md(feature)}**${value}: ${v > 0 ? 'raises' : 'lowers'} it (${v > 0 ? '+' : '−'}${Math.abs(v).toFixed(2)})`);
      }
    }
  } else if (!explained) {
    lines.push('', 'The contributing features are not available for this call (the server is busy explaining other predictions, or this model version predates explanations).');
  }
  const missing = featureColumns(spec).filter((c) => !Object.hasOwn(record, c));
  if (missing.length) lines.push('', `No data for ${missing.map(md).join(', ')}: imputed as in training.`);
  lines.push('', `Model ${md(rec.name)} v${rec.version} (${manifest.model.family}), features as of ${index}.`);
  const card: Record<string, unknown> = {
    uuid: randomUUID(),
    summary,
    indicator: band === 'high' ? 'critical' : band === 'moderate' ? 'warning' : 'info',
    detail: lines.join('\n'),
    source: { label: 'medfit', ...(base ? { url: `${base}/models/${encodeURIComponent(rec.name)}` } : {}) },
  };
  if (base) card['links'] = [{ label: `${rec.name} v${rec.version} in medfit`, url: `${base}/models/${encodeURIComponent(rec.name)}/versions/${rec.version}`, type: 'absolute' }];
  return card;
}

/** A feature's value for people: numbers to 3 significant digits, with the spec's unit when it names one. */
function formatValue(v: unknown, unit: string | undefined): string {
  const text = typeof v === 'number' && !Number.isInteger(v) ? String(Number(v.toPrecision(3))) : String(v);
  return unit !== undefined ? `${text} ${unit}` : text;
}

/** A probability as a percentage for people: one decimal, never 0% or 100% for what is neither. */
function formatPercent(p: number): string {
  const v = p * 100;
  if (v > 0 && v < 0.1) return '<0.1%';
  if (v < 100 && v > 99.9) return '>99.9%';
  return `${v.toFixed(1)}%`;
}

function clip(s: string, n: number): string {
  return s.length <= n ? s : `${s.slice(0, n - 1)}…`;
}

/** Text for Markdown: the characters that would format it escaped. */
function md(s: string): string {
  let out = '';
  for (const c of s) out += '\\`*_[]<>|~'.includes(c) ? `\\${c}` : c;
  return out;
}

/** A Host header that is a plain `host[:port]` (no path, no user info, nothing to inject). */
export function hostIsPlain(host: string | undefined): host is string {
  if (!host || host.length > 260) return false;
  let i = 0;
  if (host[0] === '[') {
    const end = host.indexOf(']');
    if (end < 0) return false;
    for (let k = 1; k < end; k++) if (!/[0-9A-Fa-f:.]/.test(host[k]!)) return false;
    i = end + 1;
  } else {
    while (i < host.length && /[A-Za-z0-9.-]/.test(host[i]!)) i++;
    if (i === 0) return false;
  }
  if (i === host.length) return true;
  if (host[i] !== ':' || i + 1 === host.length || host.length - i > 6) return false;
  for (let k = i + 1; k < host.length; k++) if (host.charCodeAt(k) < 48 || host.charCodeAt(k) > 57) return false;
  return true;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function noStore(reply: FastifyReply): void {
  reply.header('cache-control', 'no-store');
}
