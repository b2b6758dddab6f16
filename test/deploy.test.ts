/**
 * The deployment files (deploy/) against the code they deploy: every environment variable a
 * manifest or Compose sets is one medfit reads, every container's configuration passes
 * `loadConfig` (so every rule it enforces on combinations holds), commands are ones the CLI
 * knows, probes hit the routes and the port the server listens on, and the autoscalers,
 * disruption budgets, Service and Secret references point at what exists. No image is built and
 * no cluster is reached: these are the files' own promises, checked in a few milliseconds.
 *
 * Each test collects every problem and compares the list with []: a failure names the file, the
 * object and what is wrong, all at once.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse, parseAllDocuments } from 'yaml';
// The configuration and the queue's names straight from their files: the rooms' index.ts would
// load the HTTP server and BullMQ as well (two seconds more) for nothing these checks use.
import { CONFIG_VARIABLES, SERVER_ROLES, loadConfig, type ServerConfig } from '../src/api/config.js';
import { trainQueueActiveKey, trainQueueWaitKey } from '../src/jobs/redis-names.js';
import { ROOT } from './helpers.js';

const DEPLOY = join(ROOT, 'deploy');
const K8S = join(DEPLOY, 'k8s');
const SECRET_EXAMPLE = 'secret.example.yaml';

/** The commands a deployment may run: `serve` (with `--role`) and `worker` (= `serve --role worker`). */
const COMMANDS = ['serve', 'worker'] as const;
/** The executable every medfit container runs (the image's ENTRYPOINT). */
const ENTRYPOINT = ['node', 'bin/medfit.js'];
/** What `loadConfig` makes of an empty environment: the port a server listens on by default. */
const DEFAULT_PORT = loadConfig({}).port;
const KNOWN = new Set<string>(CONFIG_VARIABLES);

/**
 * Variables the other images of compose.yaml read (never medfit's containers): the official
 * postgres image's and MinIO's (server and `mc`) own settings.
 */
const OTHER_IMAGES_ENV: Record<string, readonly string[]> = {
  'postgres:': ['POSTGRES_USER', 'POSTGRES_PASSWORD', 'POSTGRES_DB', 'PGDATA'],
  'minio/minio': ['MINIO_ROOT_USER', 'MINIO_ROOT_PASSWORD'],
  'minio/mc': ['MINIO_ROOT_USER', 'MINIO_ROOT_PASSWORD'],
};

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const obj = (v: unknown): Obj => (isObj(v) ? v : {});
const arr = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);
const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : typeof v === 'number' || typeof v === 'boolean' ? String(v) : undefined);

// ---------------------------------------------------------------------------------------------
// Reading the files

interface Manifest {
  file: string;
  kind: string;
  name: string;
  doc: Obj;
}

function readManifests(): Manifest[] {
  const out: Manifest[] = [];
  for (const file of readdirSync(K8S).filter((f) => /\.ya?ml$/.test(f)).sort()) {
    for (const d of parseAllDocuments(readFileSync(join(K8S, file), 'utf8'))) {
      if (d.errors.length) throw new Error(`deploy/k8s/${file}: ${d.errors[0]!.message}`);
      const doc = d.toJS() as unknown;
      if (!isObj(doc)) continue;
      out.push({ file, kind: str(doc['kind']) ?? '', name: str(obj(doc['metadata'])['name']) ?? '', doc });
    }
  }
  return out;
}

/** One Dockerfile instruction, continuation lines joined. */
interface Instruction {
  op: string;
  args: string;
  stage: number;
}

function readDockerfile(text: string): Instruction[] {
  const out: Instruction[] = [];
  let stage = -1;
  let pending = '';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!pending && (line === '' || line.startsWith('#'))) continue;
    if (pending && line.startsWith('#')) continue;
    if (line.endsWith('\\')) {
      pending += `${line.slice(0, -1)} `;
      continue;
    }
    const full = (pending + line).trim();
    pending = '';
    const m = /^(\S+)\s*(.*)$/.exec(full);
    if (!m) continue;
    const op = m[1]!.toUpperCase();
    if (op === 'FROM') stage++;
    out.push({ op, args: m[2]!, stage });
  }
  return out;
}

/**
 * A Compose variable reference: `$$` (a literal `$`), `${NAME}`, `${NAME<op><text>}` with op one of
 * `:-` `-` (a default) or `:?` `?` (required, with an error message), or `$NAME`.
 */
const COMPOSE_REF = /\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)/g;
/** Names of variables that hold secrets (passwords, keys, tokens; not AWS_ACCESS_KEY_ID, an identifier). */
const SECRET_NAME = /PASSWORD|SECRET|TOKEN|(^|_)KEY$/;

/**
 * What deploy/.env would give a required variable in a test: a value that is no placeholder
 * (`REPLACE_ME…` is refused by the server), long enough for every key rule, and safe in a URL.
 */
const filledValue = (name: string): string => `test-${name.toLowerCase().replace(/_/g, '-')}-0123456789abcdef0123456789abcdef`;

/**
 * Compose's interpolation as `docker compose up` with a filled-in deploy/.env does it:
 * `${VAR:-default}` and `${VAR-default}` take the default, `${VAR:?message}` and `${VAR?message}`
 * (required: Compose stops with the message when it is unset) take `filledValue(VAR)`, `$$` is `$`.
 * A reference with neither is a problem: Compose would put in an empty string, with a warning.
 */
function interpolate(value: unknown, where: string, problems: string[]): unknown {
  if (typeof value === 'string') {
    return value.replace(COMPOSE_REF, (all, braced?: string, op?: string, text?: string, bare?: string) => {
      if (all === '$$') return '$';
      if (op === ':-' || op === '-') return text ?? '';
      if (op === ':?' || op === '?') return filledValue(braced!);
      problems.push(`${where}: \${${braced ?? bare}} has neither a default nor a required mark (write \${NAME:?message} for a secret, \${NAME:-value} for a setting)`);
      return '';
    });
  }
  if (Array.isArray(value)) return value.map((v) => interpolate(v, where, problems));
  if (isObj(value)) return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, interpolate(v, where, problems)]));
  return value;
}

/** Calls `fn` on every string below `value`, with its path (`services.api.environment.X`). */
function eachString(value: unknown, at: string, fn: (text: string, at: string) => void): void {
  if (typeof value === 'string') fn(value, at);
  else if (Array.isArray(value)) value.forEach((v, i) => eachString(v, `${at}[${i}]`, fn));
  else if (isObj(value)) for (const [k, v] of Object.entries(value)) eachString(v, `${at}.${k}`, fn);
}

/** The host address a Compose `ports` entry binds, or undefined when it binds every interface. */
function portHostIp(port: unknown): string | undefined {
  if (isObj(port)) return str(port['host_ip']);
  const s = String(port);
  if (s.startsWith('[')) return s.slice(1, s.indexOf(']'));
  const parts = s.split(':');
  return parts.length === 3 ? parts[0] : undefined;
}

// ---------------------------------------------------------------------------------------------
// What a medfit container runs

interface Invocation {
  role: string;
  flags: Partial<Record<'host' | 'port' | 'dataDir' | 'mqtt' | 'mqttModel' | 'role', string>>;
}

/**
 * The role and flags of `<command> [flags]` (the arguments after `node bin/medfit.js`), checked
 * against the commands the CLI has and SERVER_ROLES; undefined (with the problem noted) otherwise.
 */
function invocation(args: string[], env: Record<string, string>, where: string, problems: string[]): Invocation | undefined {
  const [command, ...rest] = args;
  if (!(COMMANDS as readonly string[]).includes(command ?? '')) {
    problems.push(`${where}: runs "${args.join(' ')}": the command must be one of ${COMMANDS.join(', ')}`);
    return undefined;
  }
  const names: Record<string, keyof Invocation['flags']> = { host: 'host', port: 'port', 'data-dir': 'dataDir', mqtt: 'mqtt', 'mqtt-model': 'mqttModel', role: 'role' };
  const flags: Invocation['flags'] = {};
  for (let i = 0; i < rest.length; i++) {
    const m = /^--([a-z-]+)(?:=(.*))?$/.exec(rest[i]!);
    const key = m ? names[m[1]!] : undefined;
    const value = m?.[2] ?? rest[i + 1];
    if (!m || key === undefined || value === undefined) {
      problems.push(`${where}: "${rest[i]}" is not a flag of medfit ${command}`);
      return undefined;
    }
    if (command === 'worker' && key === 'role') {
      problems.push(`${where}: medfit worker takes no --role (it is serve --role worker)`);
      return undefined;
    }
    flags[key] = value;
    if (m[2] === undefined) i++;
  }
  if (command === 'worker') flags.role = 'worker';
  const role = flags.role ?? (env['MEDFIT_ROLE'] || 'all');
  if (!(SERVER_ROLES as readonly string[]).includes(role)) problems.push(`${where}: role "${role}" is not one of ${SERVER_ROLES.join(', ')}`);
  return { role, flags };
}

/** `loadConfig` on a container's environment and flags: the configuration, or the problem. */
function configOf(env: Record<string, string>, inv: Invocation, where: string, problems: string[]): ServerConfig | undefined {
  try {
    return loadConfig(env, inv.flags);
  } catch (e) {
    problems.push(`${where}: loadConfig refuses its configuration: ${e instanceof Error ? e.message : String(e)}`);
    return undefined;
  }
}

// ---------------------------------------------------------------------------------------------
// The files, read once

const dockerfileText = readFileSync(join(DEPLOY, 'Dockerfile'), 'utf8');
const docker = readDockerfile(dockerfileText);
const finalStage = Math.max(...docker.map((i) => i.stage));
const runtime = docker.filter((i) => i.stage === finalStage);
/** The image's ENV: the environment every container starts from. */
const imageEnv: Record<string, string> = {};
for (const i of runtime.filter((x) => x.op === 'ENV')) {
  for (const pair of i.args.split(/\s+/).filter(Boolean)) {
    const eq = pair.indexOf('=');
    if (eq > 0) imageEnv[pair.slice(0, eq)] = pair.slice(eq + 1).replace(/^"(.*)"$/, '$1');
  }
}
const jsonArgs = (op: string): string[] | undefined => {
  const i = runtime.filter((x) => x.op === op).at(-1);
  if (!i) return undefined;
  try {
    const v = JSON.parse(i.args) as unknown;
    return Array.isArray(v) ? v.map(String) : undefined;
  } catch {
    return undefined;
  }
};
const imageUser = runtime.filter((i) => i.op === 'USER').at(-1)?.args.trim();
const imageUid = imageUser !== undefined && /^\d+(:\d+)?$/.test(imageUser) ? Number(imageUser.split(':')[0]) : undefined;
const exposed = runtime.filter((i) => i.op === 'EXPOSE').flatMap((i) => i.args.split(/\s+/).map((p) => Number(p.split('/')[0])));

const manifests = readManifests();
const ofKind = (kind: string) => manifests.filter((m) => m.kind === kind);
const secretExample = manifests.find((m) => m.file === SECRET_EXAMPLE && m.kind === 'Secret');
const secretName = secretExample?.name;
const secretValues: Record<string, string> = {};
if (secretExample) {
  for (const [k, v] of Object.entries(obj(secretExample.doc['stringData']))) secretValues[k] = str(v) ?? '';
  for (const [k, v] of Object.entries(obj(secretExample.doc['data']))) secretValues[k] = Buffer.from(str(v) ?? '', 'base64').toString('utf8');
}
/**
 * A Secret value as a filled-in copy of the example would have it: `REPLACE_ME` (which the server
 * refuses as a secret's start) becomes a test value of the same length, so every length rule
 * `loadConfig` applies is still checked on the example's values.
 */
const filledSecret = (value: string): string => value.replace(/REPLACE_ME/g, 'test_value');
const configMaps = new Map(ofKind('ConfigMap').map((m) => [m.name, Object.fromEntries(Object.entries(obj(m.doc['data'])).map(([k, v]) => [k, str(v) ?? '']))]));

// ---------------------------------------------------------------------------------------------
// Kubernetes

/** A medfit container of a Deployment, as the cluster would start it. */
interface K8sContainer {
  where: string;
  deployment: Manifest;
  component: string;
  pod: Obj;
  container: Obj;
  /** The image's ENV, then envFrom, then env, with the Secret's placeholders substituted. */
  env: Record<string, string>;
  /** Every variable name the manifest sets (envFrom's keys included). */
  names: string[];
  /** Secret keys referenced: [secret name, key]. */
  secretRefs: [string, string][];
  inv?: Invocation;
  config?: ServerConfig;
  ports: Map<string, number>;
}

function k8sContainers(problems: string[]): K8sContainer[] {
  const out: K8sContainer[] = [];
  for (const d of ofKind('Deployment')) {
    const template = obj(obj(d.doc['spec'])['template']);
    const pod = obj(template['spec']);
    const component = str(obj(obj(template['metadata'])['labels'])['app.kubernetes.io/component']) ?? '';
    for (const c of arr(pod['containers']).map(obj)) {
      if (!(str(c['image']) ?? '').includes('medfit')) continue;
      const where = `deploy/k8s/${d.file}: Deployment ${d.name}, container ${str(c['name'])}`;
      const env: Record<string, string> = { ...imageEnv };
      const names: string[] = [];
      const secretRefs: [string, string][] = [];
      for (const from of arr(c['envFrom']).map(obj)) {
        const cm = str(obj(from['configMapRef'])['name']);
        const sec = str(obj(from['secretRef'])['name']);
        if (cm !== undefined) {
          const data = configMaps.get(cm);
          if (!data) problems.push(`${where}: envFrom names ConfigMap ${cm}, which no manifest defines`);
          for (const [k, v] of Object.entries(data ?? {})) {
            env[k] = v;
            names.push(k);
          }
        } else if (sec !== undefined) {
          if (sec !== secretName) problems.push(`${where}: envFrom names Secret ${sec}; ${SECRET_EXAMPLE} defines ${secretName}`);
          for (const [k, v] of Object.entries(secretValues)) {
            env[k] = filledSecret(v);
            names.push(k);
            secretRefs.push([sec, k]);
          }
        }
      }
      for (const e of arr(c['env']).map(obj)) {
        const name = str(e['name']) ?? '';
        names.push(name);
        const from = obj(e['valueFrom']);
        if (e['value'] !== undefined) env[name] = str(e['value']) ?? '';
        else if (isObj(from['secretKeyRef'])) {
          const ref = from['secretKeyRef'];
          const [sn, key] = [str(ref['name']) ?? '', str(ref['key']) ?? ''];
          secretRefs.push([sn, key]);
          env[name] = filledSecret(secretValues[key] ?? '');
        } else if (isObj(from['configMapKeyRef'])) {
          const ref = from['configMapKeyRef'];
          const v = configMaps.get(str(ref['name']) ?? '')?.[str(ref['key']) ?? ''];
          if (v === undefined) problems.push(`${where}: ${name} reads ConfigMap key ${str(ref['name'])}/${str(ref['key'])}, which does not exist`);
          env[name] = v ?? '';
        } else problems.push(`${where}: ${name} has neither a value nor a Secret or ConfigMap reference`);
      }
      const command = arr(c['command']).map(String);
      if (command.length && command.join(' ') !== ENTRYPOINT.join(' ')) problems.push(`${where}: command ${JSON.stringify(command)} replaces the image's entrypoint ${JSON.stringify(ENTRYPOINT)}`);
      const args = arr(c['args']).map(String);
      const inv = invocation(args.length ? args : (jsonArgs('CMD') ?? []), env, where, problems);
      const config = inv && configOf(env, inv, where, problems);
      const ports = new Map<string, number>();
      for (const p of arr(c['ports']).map(obj)) ports.set(str(p['name']) ?? String(p['containerPort']), Number(p['containerPort']));
      out.push({ where, deployment: d, component, pod, container: c, env, names, secretRefs, ports, ...(inv ? { inv } : {}), ...(config ? { config } : {}) });
    }
  }
  return out;
}

/** A probe's or Service's port, resolved: a number, or a container port's name. */
function resolvePort(port: unknown, ports: Map<string, number>): number | undefined {
  if (typeof port === 'number') return port;
  const s = str(port);
  if (s === undefined) return undefined;
  return /^\d+$/.test(s) ? Number(s) : ports.get(s);
}

const matches = (selector: Obj, labels: Obj) => Object.keys(selector).length > 0 && Object.entries(selector).every(([k, v]) => labels[k] === v);
const podLabels = (d: Manifest) => obj(obj(obj(obj(d.doc['spec'])['template'])['metadata'])['labels']);

describe('deploy/k8s', () => {
  const problems: string[] = [];
  const containers = k8sContainers(problems);
  const byComponent = (c: string) => containers.filter((x) => x.component === c);
  const deployment = (component: string) => byComponent(component)[0]?.deployment;

  it('has an api and a worker Deployment, and an example Secret', () => {
    expect(byComponent('api').length, 'a Deployment whose pods carry app.kubernetes.io/component: api').toBe(1);
    expect(byComponent('worker').length, 'a Deployment whose pods carry app.kubernetes.io/component: worker').toBe(1);
    expect(secretExample, `deploy/k8s/${SECRET_EXAMPLE} holds a Secret`).toBeDefined();
  });

  it("every container's configuration passes loadConfig, with only variables medfit reads", () => {
    const found = [...problems];
    for (const c of containers) {
      for (const n of c.names) if (!KNOWN.has(n)) found.push(`${c.where}: sets ${n}, which medfit does not read (CONFIG_VARIABLES in src/api/config.ts)`);
      if (!c.config) continue;
      if (c.config.role !== c.component) found.push(`${c.where}: runs role ${c.config.role} in the ${c.component} Deployment`);
      // Cluster mode: loadConfig enforces that the queue comes with shared metadata and storage;
      // these say the manifests are in that mode at all.
      if (!c.config.redis || !c.config.database || c.config.storage.kind !== 's3') found.push(`${c.where}: needs MEDFIT_REDIS_URL, MEDFIT_DATABASE_URL and an s3:// MEDFIT_STORAGE_URL`);
      if (c.config.host !== '0.0.0.0') found.push(`${c.where}: listens on ${c.config.host}; probes and the Service need 0.0.0.0`);
    }
    expect(found).toEqual([]);
  });

  it('runs a command the CLI knows, from the image entrypoint', () => {
    expect(existsSync(join(ROOT, ENTRYPOINT[1]!)), `${ENTRYPOINT[1]} exists`).toBe(true);
    for (const c of containers) expect(c.inv, `${c.where}: a known command`).toBeDefined();
  });

  it('probes /healthz (liveness, startup) and /readyz (readiness) on the port the server listens on', () => {
    const found: string[] = [];
    for (const c of containers) {
      const port = c.config?.port ?? DEFAULT_PORT;
      if (![...c.ports.values()].includes(port)) found.push(`${c.where}: the server listens on ${port} (MEDFIT_PORT), which is not a containerPort (${[...c.ports.values()].join(', ')})`);
      const want: Record<string, string> = { livenessProbe: '/healthz', startupProbe: '/healthz', readinessProbe: '/readyz' };
      for (const [probe, path] of Object.entries(want)) {
        const p = c.container[probe];
        if (p === undefined && probe === 'startupProbe') continue;
        const get = obj(obj(p)['httpGet']);
        if (!isObj(p)) found.push(`${c.where}: has no ${probe}`);
        else if (get['path'] !== path) found.push(`${c.where}: ${probe} asks ${str(get['path'])}, not ${path}`);
        else if (resolvePort(get['port'], c.ports) !== port) found.push(`${c.where}: ${probe} asks port ${str(get['port'])}, not ${port} where the server listens`);
      }
    }
    expect(found).toEqual([]);
  });

  it('runs as the image user, non-root, on a read-only root with the data directory and /tmp writable', () => {
    const found: string[] = [];
    for (const c of containers) {
      const podSc = obj(c.pod['securityContext']);
      const sc = obj(c.container['securityContext']);
      if ((sc['runAsNonRoot'] ?? podSc['runAsNonRoot']) !== true) found.push(`${c.where}: runAsNonRoot is not true`);
      const uid = sc['runAsUser'] ?? podSc['runAsUser'];
      if (uid !== undefined && uid !== imageUid) found.push(`${c.where}: runAsUser ${str(uid)} is not the image's USER ${imageUid}`);
      if (sc['readOnlyRootFilesystem'] !== true) found.push(`${c.where}: readOnlyRootFilesystem is not true`);
      if (sc['allowPrivilegeEscalation'] !== false) found.push(`${c.where}: allowPrivilegeEscalation is not false`);
      const volumes = new Map(arr(c.pod['volumes']).map(obj).map((v) => [str(v['name']), v]));
      const mounts = arr(c.container['volumeMounts']).map(obj);
      for (const dir of [c.config?.dataDir ?? '(unknown data dir)', '/tmp']) {
        const m = mounts.find((x) => x['mountPath'] === dir);
        if (!m) found.push(`${c.where}: nothing writable is mounted at ${dir}`);
        else if (!volumes.has(str(m['name']))) found.push(`${c.where}: mounts volume ${str(m['name'])} at ${dir}, which the pod does not define`);
        else if (m['readOnly'] === true) found.push(`${c.where}: mounts ${dir} read-only`);
      }
      const res = obj(c.container['resources']);
      for (const kind of ['requests', 'limits']) for (const r of ['cpu', 'memory']) if (obj(res[kind])[r] === undefined) found.push(`${c.where}: no ${kind}.${r}`);
    }
    const grace = (component: string) => Number(byComponent(component)[0]?.pod['terminationGracePeriodSeconds'] ?? 30);
    if (grace('api') < 30) found.push('api: terminationGracePeriodSeconds under 30 leaves in-flight requests too little time to drain');
    if (grace('worker') < 60) found.push('worker: terminationGracePeriodSeconds under 60 may kill a worker before it has returned its job to the queue');
    expect(found).toEqual([]);
  });

  it('references only Secret keys that secret.example.yaml has, with placeholders marked, and shares the keys', () => {
    const found: string[] = [];
    for (const c of containers) {
      for (const [name, key] of c.secretRefs) {
        if (name !== secretName) found.push(`${c.where}: reads Secret ${name}; ${SECRET_EXAMPLE} defines ${secretName}`);
        else if (!(key in secretValues)) found.push(`${c.where}: reads key ${key}, which ${SECRET_EXAMPLE} lacks`);
      }
    }
    for (const t of ofKind('TriggerAuthentication')) {
      for (const ref of arr(obj(t.doc['spec'])['secretTargetRef']).map(obj)) {
        if (ref['name'] !== secretName || !((str(ref['key']) ?? '') in secretValues)) found.push(`deploy/k8s/${t.file}: TriggerAuthentication ${t.name} reads ${str(ref['name'])}/${str(ref['key'])}, which ${SECRET_EXAMPLE} lacks`);
      }
    }
    for (const [k, v] of Object.entries(secretValues)) if (!/REPLACE_ME|\.example\./.test(v)) found.push(`${SECRET_EXAMPLE}: ${k} is not marked as a placeholder (REPLACE_ME or an .example. host)`);
    // Every replica and worker must sign, check and pseudonymise alike.
    for (const key of ['MEDFIT_ADMIN_KEY', 'MEDFIT_MANIFEST_KEY', 'MEDFIT_DEID_KEY']) {
      const sources = new Set(containers.map((c) => JSON.stringify(arr(c.container['env']).map(obj).find((e) => e['name'] === key)?.['valueFrom'] ?? null)));
      if (sources.size !== 1 || sources.has('null')) found.push(`${key}: not read from one and the same Secret key by every Deployment`);
    }
    expect(found).toEqual([]);
  });

  it('the Service selects the api pods (only) and targets their port', () => {
    const found: string[] = [];
    const api = byComponent('api')[0];
    const services = ofKind('Service');
    if (services.length === 0) found.push('no Service');
    for (const s of services) {
      const spec = obj(s.doc['spec']);
      const sel = obj(spec['selector']);
      if (!api || !matches(sel, podLabels(api.deployment))) found.push(`Service ${s.name}: selector ${JSON.stringify(sel)} does not select the api pods`);
      for (const w of byComponent('worker')) if (matches(sel, podLabels(w.deployment))) found.push(`Service ${s.name}: also selects the worker pods`);
      for (const p of arr(spec['ports']).map(obj)) {
        const target = resolvePort(p['targetPort'] ?? p['port'], api?.ports ?? new Map());
        if (target !== (api?.config?.port ?? DEFAULT_PORT)) found.push(`Service ${s.name}: targetPort ${str(p['targetPort'])} is not the api container's port ${api?.config?.port}`);
      }
    }
    expect(found).toEqual([]);
  });

  it('the HPA scales the api Deployment on CPU; KEDA scales the worker on the train queue', () => {
    const found: string[] = [];
    const hpas = ofKind('HorizontalPodAutoscaler');
    if (hpas.length !== 1) found.push(`${hpas.length} HorizontalPodAutoscalers, not 1`);
    for (const h of hpas) {
      const spec = obj(h.doc['spec']);
      const ref = obj(spec['scaleTargetRef']);
      if (h.doc['apiVersion'] !== 'autoscaling/v2') found.push(`HPA ${h.name}: apiVersion ${str(h.doc['apiVersion'])}, not autoscaling/v2`);
      if (ref['kind'] !== 'Deployment' || ref['name'] !== deployment('api')?.name) found.push(`HPA ${h.name}: targets ${str(ref['kind'])} ${str(ref['name'])}, not the api Deployment ${deployment('api')?.name}`);
      if (!arr(spec['metrics']).map(obj).some((m) => obj(m['resource'])['name'] === 'cpu')) found.push(`HPA ${h.name}: no CPU metric`);
      if (Number(spec['minReplicas'] ?? 1) < 2) found.push(`HPA ${h.name}: minReplicas under 2 leaves one replica, and no availability through a rollout or a drain`);
    }
    const worker = byComponent('worker')[0];
    const prefix = worker?.config?.redis?.prefix ?? 'medfit';
    const concurrency = worker?.config?.concurrency ?? 1;
    const waitKey = trainQueueWaitKey(prefix);
    // BullMQ moves a job taken by a worker from <queue>:wait to <queue>:active.
    const activeKey = trainQueueActiveKey(prefix);
    const scaled = ofKind('ScaledObject');
    if (scaled.length !== 1) found.push(`${scaled.length} ScaledObjects, not 1`);
    const auths = new Set(ofKind('TriggerAuthentication').map((t) => t.name));
    for (const s of scaled) {
      const spec = obj(s.doc['spec']);
      const ref = obj(spec['scaleTargetRef']);
      if ((ref['kind'] ?? 'Deployment') !== 'Deployment' || ref['name'] !== deployment('worker')?.name) found.push(`ScaledObject ${s.name}: targets ${str(ref['name'])}, not the worker Deployment ${deployment('worker')?.name}`);
      const triggers = arr(spec['triggers']).map(obj).filter((t) => t['type'] === 'redis');
      const lists = triggers.map((t) => str(obj(t['metadata'])['listName']));
      if (!lists.includes(waitKey)) found.push(`ScaledObject ${s.name}: no redis trigger on ${waitKey} (trainQueueWaitKey("${prefix}"), the prefix the workers get); lists: ${lists.join(', ')}`);
      if (!lists.includes(activeKey)) found.push(`ScaledObject ${s.name}: no redis trigger on ${activeKey}: scaling on waiting jobs alone stops workers that are running jobs`);
      for (const t of triggers) {
        const auth = str(obj(t['authenticationRef'])['name']);
        if (auth === undefined || !auths.has(auth)) found.push(`ScaledObject ${s.name}: trigger ${str(t['name'])} authenticates with ${auth}, which no manifest defines`);
      }
      const mod = obj(obj(spec['advanced'])['scalingModifiers']);
      const formula = str(mod['formula']) ?? '';
      for (const t of triggers) if (!formula.includes(str(t['name']) ?? '\0')) found.push(`ScaledObject ${s.name}: the formula "${formula}" leaves out trigger ${str(t['name'])}`);
      if (Number(mod['target']) !== concurrency) found.push(`ScaledObject ${s.name}: target ${str(mod['target'])} jobs per worker, but workers run MEDFIT_TRAIN_CONCURRENCY=${concurrency}`);
    }
    expect(found).toEqual([]);
  });

  it('each Deployment has one PodDisruptionBudget whose selector matches its pods', () => {
    const found: string[] = [];
    const pdbs = ofKind('PodDisruptionBudget');
    for (const p of pdbs) {
      const sel = obj(obj(obj(p.doc['spec'])['selector'])['matchLabels']);
      const hits = ofKind('Deployment').filter((d) => matches(sel, podLabels(d)));
      if (hits.length !== 1) found.push(`PodDisruptionBudget ${p.name}: selector ${JSON.stringify(sel)} matches ${hits.length} Deployments, not 1`);
    }
    for (const d of ofKind('Deployment')) {
      const own = pdbs.filter((p) => matches(obj(obj(obj(p.doc['spec'])['selector'])['matchLabels']), podLabels(d)));
      if (own.length !== 1) found.push(`Deployment ${d.name}: ${own.length} PodDisruptionBudgets, not 1`);
      const spec = obj(d.doc['spec']);
      if (!matches(obj(obj(spec['selector'])['matchLabels']), podLabels(d))) found.push(`Deployment ${d.name}: its selector does not match its own pod labels`);
    }
    expect(found).toEqual([]);
  });

  it('kustomization.yaml applies every manifest but the example Secret', () => {
    const k = ofKind('Kustomization')[0];
    const files = readdirSync(K8S).filter((f) => /\.ya?ml$/.test(f) && f !== SECRET_EXAMPLE && f !== 'kustomization.yaml').sort();
    expect(arr(obj(k?.doc)['resources']).map(String).sort()).toEqual(files);
  });

  it('names no namespace (the operator chooses it)', () => {
    const found = manifests.filter((m) => obj(m.doc['metadata'])['namespace'] !== undefined).map((m) => `${m.file}: ${m.kind} ${m.name}`);
    expect(found).toEqual([]);
  });
});

// ---------------------------------------------------------------------------------------------
// Compose and its load balancer

describe('deploy/compose.yaml', () => {
  const problems: string[] = [];
  const raw = obj(parse(readFileSync(join(DEPLOY, 'compose.yaml'), 'utf8')) as unknown);
  const compose = obj(interpolate(raw, 'compose.yaml', problems));
  const services = obj(compose['services']);
  const isMedfit = (s: Obj) => s['build'] !== undefined || (str(s['image']) ?? '').startsWith('medfit');
  const envOf = (s: Obj): Record<string, string> => {
    const e = s['environment'];
    if (Array.isArray(e)) return Object.fromEntries(e.map(String).map((kv) => [kv.split('=')[0]!, kv.slice(kv.indexOf('=') + 1)]));
    return Object.fromEntries(Object.entries(obj(e)).map(([k, v]) => [k, str(v) ?? '']));
  };
  const medfit = Object.entries(services)
    .map(([name, v]) => ({ name, s: obj(v) }))
    .filter((x) => isMedfit(x.s))
    .map(({ name, s }) => {
      const where = `deploy/compose.yaml: service ${name}`;
      const env = { ...imageEnv, ...envOf(s) };
      const command = arr(s['command']).map(String);
      const inv = invocation(command.length ? command : (jsonArgs('CMD') ?? []), env, where, problems);
      const config = inv && configOf(env, inv, where, problems);
      return { name, s, where, env: envOf(s), inv, config };
    });
  const byRole = (role: string) => medfit.filter((m) => m.config?.role === role);

  it('runs api replicas and a worker, with only variables medfit reads, and loadConfig accepts each', () => {
    const found = [...problems];
    for (const m of medfit) for (const n of Object.keys(m.env)) if (!KNOWN.has(n)) found.push(`${m.where}: sets ${n}, which medfit does not read (CONFIG_VARIABLES in src/api/config.ts)`);
    const replicas = byRole('api').reduce((n, m) => n + Number(obj(m.s['deploy'])['replicas'] ?? 1), 0);
    if (replicas < 2) found.push(`${replicas} api replica(s), not at least 2`);
    if (byRole('worker').length < 1) found.push('no worker service');
    for (const key of ['MEDFIT_ADMIN_KEY', 'MEDFIT_MANIFEST_KEY', 'MEDFIT_DEID_KEY']) {
      if (new Set(medfit.map((m) => m.env[key])).size !== 1 || medfit.some((m) => !m.env[key])) found.push(`${key} differs between medfit services (or is missing)`);
    }
    expect(found).toEqual([]);
  });

  it('has no default for any secret (every one ${VAR:?message}, none written in the file), and publishes on 127.0.0.1 only', () => {
    const found: string[] = [];
    const required = /^\$\{([A-Za-z_][A-Za-z0-9_]*):\?[^}]+\}$/;
    // A default for a secret is a published one: Compose would start with it when deploy/.env is missing.
    eachString(raw, 'compose.yaml', (text, at) => {
      for (const m of text.matchAll(COMPOSE_REF)) {
        const name = m[1] ?? m[4];
        if (name === undefined || !SECRET_NAME.test(name) || m[2] === ':?') continue;
        found.push(`${at}: secret ${name} is written ${m[0].slice(0, 40)}: write \${${name}:?set ${name} in deploy/.env (see deploy/README.md)} (no default; ":?" refuses empty too)`);
      }
    });
    for (const [name, v] of Object.entries(obj(raw['services']))) {
      const s = obj(v);
      for (const [key, value] of Object.entries(envOf(s))) {
        // A secret's whole value comes from deploy/.env; so does a password inside a URL.
        if (SECRET_NAME.test(key) && !required.test(value)) found.push(`service ${name}: ${key} is not exactly one required \${VAR:?message}`);
        const password = /^[a-z][a-z0-9+.-]*:\/\/[^/@:]*:([^@]*)@/i.exec(value)?.[1];
        if (password !== undefined && !required.test(password)) found.push(`service ${name}: ${key} holds a URL whose password is not a required \${VAR:?message}`);
      }
      for (const p of arr(s['ports'])) {
        const ip = portHostIp(p);
        if (ip !== '127.0.0.1' && ip !== '::1') found.push(`service ${name}: publishes ${JSON.stringify(p)} on ${ip ?? 'every interface'}, not 127.0.0.1 (expose it deliberately, as deploy/README.md says)`);
      }
      if (s['network_mode'] === 'host') found.push(`service ${name}: network_mode host publishes every port it listens on`);
    }
    expect(found).toEqual([]);
  });

  it("other images get only their own documented variables", () => {
    const found: string[] = [];
    for (const [name, v] of Object.entries(services)) {
      const s = obj(v);
      if (isMedfit(s)) continue;
      const image = str(s['image']) ?? '';
      const allowed = Object.entries(OTHER_IMAGES_ENV).find(([prefix]) => image.startsWith(prefix))?.[1] ?? [];
      for (const n of Object.keys(envOf(s))) if (!allowed.includes(n)) found.push(`service ${name} (${image}): sets ${n}, not in the allow-list for that image`);
    }
    expect(found).toEqual([]);
  });

  it('health checks hit /healthz or /readyz on MEDFIT_PORT; start order waits on health', () => {
    const found: string[] = [];
    for (const m of medfit) {
      const test = arr(obj(m.s['healthcheck'])['test']).map(String).join(' ');
      const hit = /http:\/\/(?:127\.0\.0\.1|localhost):(\d+)(\/[a-z]+)/.exec(test);
      if (!hit) found.push(`${m.where}: no health check on an http://127.0.0.1:<port>/ route`);
      else {
        if (Number(hit[1]) !== (m.config?.port ?? DEFAULT_PORT)) found.push(`${m.where}: health check on port ${hit[1]}, but the server listens on ${m.config?.port}`);
        if (!['/healthz', '/readyz'].includes(hit[2]!)) found.push(`${m.where}: health check on ${hit[2]}, not /healthz or /readyz`);
      }
      if (!exposed.includes(m.config?.port ?? DEFAULT_PORT)) found.push(`${m.where}: listens on ${m.config?.port}, which the image does not EXPOSE`);
      if (m.s['read_only'] !== true) found.push(`${m.where}: root file system not read_only`);
      const writable = [...arr(m.s['tmpfs']).map(String), ...arr(m.s['volumes']).map((v) => String(v).split(':').at(-1) === String(v) ? String(v) : String(v).split(':')[1]!)];
      for (const dir of [m.config?.dataDir ?? '(unknown data dir)', '/tmp']) if (!writable.includes(dir)) found.push(`${m.where}: nothing writable at ${dir}`);
      if (m.s['stop_grace_period'] === undefined) found.push(`${m.where}: no stop_grace_period (Compose's 10 s is short for a drain)`);
    }
    for (const [name, v] of Object.entries(services)) {
      for (const [dep, cond] of Object.entries(obj(obj(v)['depends_on']))) {
        if (!(dep in services)) found.push(`service ${name}: depends on ${dep}, which does not exist`);
        const condition = str(obj(cond)['condition']);
        const target = obj(services[dep]);
        if (condition === 'service_healthy' && target['healthcheck'] === undefined) found.push(`service ${name}: waits for ${dep} to be healthy, which has no health check`);
        if (condition === undefined) found.push(`service ${name}: depends on ${dep} with no condition`);
      }
    }
    for (const m of medfit) {
      const deps = obj(m.s['depends_on']);
      for (const backing of ['postgres', 'redis']) if (str(obj(deps[backing])['condition']) !== 'service_healthy') found.push(`${m.where}: does not wait for ${backing} to be healthy`);
    }
    expect(found).toEqual([]);
  });

  it('nginx listens on the published port and balances over the api service on its port', () => {
    const found: string[] = [];
    const lbEntry = Object.entries(services).find(([, v]) => (str(obj(v)['image']) ?? '').startsWith('nginx'));
    const conf = readFileSync(join(DEPLOY, 'nginx.conf'), 'utf8').replace(/#.*$/gm, '');
    if (!lbEntry) found.push('no nginx service');
    else {
      const [name, lb] = [lbEntry[0], obj(lbEntry[1])];
      if (!arr(lb['volumes']).map(String).some((v) => v.startsWith('./nginx.conf:'))) found.push(`service ${name}: does not mount ./nginx.conf`);
      const listen = Number(/\blisten\s+(\d+)/.exec(conf)?.[1]);
      const published = arr(lb['ports']).map((p) => Number(String(p).split(':').at(-1)));
      if (!published.includes(listen)) found.push(`service ${name}: publishes ${published.join(', ')}, but nginx listens on ${listen}`);
      if (str(obj(obj(lb['depends_on'])[byRole('api')[0]?.name ?? 'api'])['condition']) !== 'service_healthy') found.push(`service ${name}: does not wait for the api to be healthy`);
    }
    const upstreams = [...conf.matchAll(/\bserver\s+([A-Za-z0-9_.-]+):(\d+)/g)].map((m) => ({ host: m[1]!, port: Number(m[2]) }));
    if (upstreams.length === 0) found.push('nginx.conf: no upstream server');
    for (const u of upstreams) {
      const api = byRole('api').find((m) => m.name === u.host);
      if (!api) found.push(`nginx.conf: upstream ${u.host} is not an api service of compose.yaml`);
      else if (u.port !== api.config?.port) found.push(`nginx.conf: upstream port ${u.port}, but ${u.host} listens on ${api.config?.port}`);
    }
    // Job progress is Server-Sent Events and stream predictions NDJSON: buffered, they would stall.
    if (!/\bproxy_buffering\s+off\s*;/.test(conf)) found.push('nginx.conf: proxy_buffering is not off (SSE and NDJSON streams would stall)');
    expect(found).toEqual([]);
  });
});

// ---------------------------------------------------------------------------------------------
// The image

describe('deploy/Dockerfile', () => {
  it('runs bin/medfit.js with a command the CLI knows, as a numeric non-root user, on the exposed port', () => {
    const found: string[] = [];
    const entry = jsonArgs('ENTRYPOINT');
    if (JSON.stringify(entry) !== JSON.stringify(ENTRYPOINT)) found.push(`ENTRYPOINT is ${JSON.stringify(entry)}, not ${JSON.stringify(ENTRYPOINT)} (in exec form)`);
    if (!existsSync(join(ROOT, ENTRYPOINT[1]!))) found.push(`${ENTRYPOINT[1]} does not exist`);
    const inv = invocation(jsonArgs('CMD') ?? [], imageEnv, 'Dockerfile CMD', found);
    const config = inv && configOf(imageEnv, inv, 'Dockerfile ENV + CMD', found);
    if (imageUid === undefined || imageUid === 0) found.push(`USER is ${imageUser}: it must be a numeric uid other than 0 (runAsNonRoot can only verify a number)`);
    if (config && !exposed.includes(config.port)) found.push(`EXPOSE ${exposed.join(' ')}, but the server listens on ${config.port}`);
    if (config?.host !== '0.0.0.0') found.push(`ENV MEDFIT_HOST is ${imageEnv['MEDFIT_HOST']}: a container must listen on 0.0.0.0`);
    if (!imageEnv['MEDFIT_DATA_DIR']) found.push('ENV MEDFIT_DATA_DIR is not set');
    for (const n of Object.keys(imageEnv)) if (!KNOWN.has(n)) found.push(`ENV ${n} is not a variable medfit reads`);
    const health = runtime.filter((i) => i.op === 'HEALTHCHECK').at(-1)?.args ?? '';
    if (!health.includes('/healthz')) found.push('HEALTHCHECK does not ask /healthz');
    for (const c of k8sContainers([])) if (!exposed.includes(Number([...c.ports.values()][0]))) found.push(`${c.where}: containerPort is not the image's EXPOSE`);
    expect(found).toEqual([]);
  });

  it('builds with npm ci and ships production dependencies only', () => {
    const found: string[] = [];
    const runs = docker.filter((i) => i.op === 'RUN').map((i) => i.args);
    if (!runs.some((r) => /\bnpm ci\b/.test(r))) found.push('no `npm ci` (its prepare script builds dist/ and web/dist)');
    if (!runs.some((r) => r.includes('--omit=dev'))) found.push('no --omit=dev: the image would carry the dev dependencies');
    for (const tool of ['python3', 'make', 'g++']) if (!runs.some((r) => r.includes(tool))) found.push(`the build stage lacks ${tool} (better-sqlite3 compiles when its prebuilt binary is unreachable)`);
    if (!/^FROM\s+\S*node:20/m.test(dockerfileText.replace(/\$\{NODE_IMAGE\}/g, /ARG NODE_IMAGE=(\S+)/.exec(dockerfileText)?.[1] ?? ''))) found.push('not built on a node:20 image');
    for (const path of ['dist', 'web/dist', 'bin', 'node_modules', 'package.json']) {
      if (!runtime.some((i) => i.op === 'COPY' && new RegExp(`(^|\\s)/app/${path.replace('/', '\\/')}(\\s|$)`).test(i.args))) found.push(`the runtime stage does not copy ${path}`);
    }
    expect(found).toEqual([]);
  });

  it('.dockerignore lets in exactly what the build copies, and nothing else', () => {
    const lines = readFileSync(join(ROOT, '.dockerignore'), 'utf8').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
    expect(lines[0], '.dockerignore starts by excluding everything (an allow-list)').toBe('*');
    const allowed = new Set(lines.filter((l) => l.startsWith('!')).map((l) => l.slice(1).replace(/\/$/, '')));
    const copied = docker.filter((i) => i.op === 'COPY' && !i.args.includes('--from')).flatMap((i) => i.args.split(/\s+/).filter((a) => !a.startsWith('--')).slice(0, -1));
    const missing = copied.filter((src) => !allowed.has(src.replace(/^\.\//, '').replace(/\/$/, '')));
    expect(missing, 'COPY sources the .dockerignore leaves out').toEqual([]);
    for (const secretish of ['.medfit', '.env', 'node_modules', 'dist']) expect(allowed.has(secretish), `.dockerignore lets in ${secretish}`).toBe(false);
  });
});
