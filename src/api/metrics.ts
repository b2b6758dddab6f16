import type { FastifyInstance } from 'fastify';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { JobStatus, MetadataStore } from '../store/index.js';
import { requireScope } from './auth.js';

/** The Prometheus metrics the server keeps. */
export interface Metrics {
  registry: Registry;
  predictions: Counter<'project' | 'model' | 'version' | 'protocol'>;
  jobsFinished: Counter<'status'>;
  /** Records one request's latency. */
  observe(method: string, route: string, status: number, seconds: number): void;
  /** Counts predicted rows. */
  countPredictions(project: string, model: string, version: string, protocol: 'v1' | 'v2', rows: number): void;
  /** Records one ONNX Runtime run: the requests the micro-batcher merged into it, and its rows. */
  observeBatch(requests: number, rows: number): void;
}

/** What `/metrics` reads of the process at each scrape (the autoscaling signals). */
export interface MetricSources {
  /** HTTP requests being answered now. */
  inFlight(): number;
  /** Training jobs this process runs now. */
  runningHere(): number;
  /** The cluster queue's jobs by state (Redis); absent on the embedded queue, whose jobs `medfit_jobs` counts. */
  queue?: () => Promise<{ waiting: number; active: number; delayed: number }>;
}

/**
 * Registers `/metrics` and the request-latency histogram, labelled by route pattern rather than by
 * raw URL so that ids in paths cannot grow the label set without bound.
 */
export function installMetrics(app: FastifyInstance, store: MetadataStore, sources: MetricSources): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'medfit_process_' });
  const latency = new Histogram({
    name: 'medfit_http_request_duration_seconds',
    help: 'HTTP request latency by route',
    labelNames: ['method', 'route', 'status'] as const,
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10],
    registers: [registry],
  });
  const predictions: Counter<'project' | 'model' | 'version' | 'protocol'> = new Counter({
    name: 'medfit_predictions_total',
    help: 'Rows predicted, by project id, model, version and protocol (v1 or v2)',
    labelNames: ['project', 'model', 'version', 'protocol'] as const,
    registers: [registry],
  });
  const jobsFinished = new Counter({ name: 'medfit_jobs_finished_total', help: 'Training jobs that ended, by status', labelNames: ['status'] as const, registers: [registry] });
  new Gauge({
    name: 'medfit_jobs',
    help: 'Training jobs by status (all projects)',
    labelNames: ['status'] as const,
    registers: [registry],
    async collect() {
      const counts = await store.countJobsByStatus();
      for (const status of Object.keys(counts) as JobStatus[]) this.set({ status }, counts[status]);
    },
  });
  // The autoscaling signals: requests in flight (API replicas), jobs waiting and running (workers).
  new Gauge({ name: 'medfit_http_requests_in_flight', help: 'HTTP requests being answered by this process', registers: [registry], collect() {
    this.set(sources.inFlight());
  } });
  new Gauge({ name: 'medfit_jobs_running_here', help: 'Training jobs running in this process', registers: [registry], collect() {
    this.set(sources.runningHere());
  } });
  const queueSource = sources.queue;
  if (queueSource) {
    new Gauge({
      name: 'medfit_queue_jobs',
      help: 'Jobs in the cluster queue (Redis) by state: waiting for a worker, active on one, delayed',
      labelNames: ['state'] as const,
      registers: [registry],
      async collect() {
        // A scrape while Redis is away shows the series as absent rather than failing /metrics.
        const c = await queueSource().catch(() => undefined);
        this.reset();
        if (c) for (const [state, n] of Object.entries(c)) this.set({ state }, n);
      },
    });
  }
  const batchRequests = new Histogram({
    name: 'medfit_inference_batch_requests',
    help: 'Requests the micro-batcher merged into one ONNX Runtime run',
    buckets: [1, 2, 4, 8, 16, 32, 64, 128],
    registers: [registry],
  });
  const batchRows = new Histogram({
    name: 'medfit_inference_batch_rows',
    help: 'Rows in one ONNX Runtime run',
    buckets: [1, 4, 16, 64, 256, 1024, 4096, 16384],
    registers: [registry],
  });
  // Series that name a project's models are shown to that project's admin keys only; process,
  // latency and job-count series carry no names and are shown to every admin.
  app.get('/metrics', { schema: { summary: 'Prometheus metrics (admin key)', tags: ['system'] } }, async (req, reply) => {
    const p = requireScope(req, 'admin');
    const text = (await registry.metrics())
      .split('\n')
      .filter((line) => !line.includes('project="') || line.includes(`project="${p.projectId}"`))
      .join('\n');
    return reply.type(registry.contentType).send(text);
  });
  // Label sets are few and recur on every request: their bound children are cached, since
  // resolving labels per call cost prediction routes a measurable share of their time.
  const latencyChildren = new Map<string, { observe(v: number): void }>();
  const predictionChildren = new Map<string, { inc(v: number): void }>();
  const metrics: Metrics = {
    registry,
    predictions,
    jobsFinished,
    observe(method, route, status, seconds) {
      const key = `${method} ${route} ${status}`;
      let child = latencyChildren.get(key);
      if (!child) latencyChildren.set(key, (child = latency.labels(method, route, String(status))));
      child.observe(seconds);
    },
    observeBatch(requests, rows) {
      batchRequests.observe(requests);
      batchRows.observe(rows);
    },
    countPredictions(project, model, version, protocol, rows) {
      const key = `${project}\u0000${model}\u0000${version}\u0000${protocol}`;
      let child = predictionChildren.get(key);
      if (!child) predictionChildren.set(key, (child = predictions.labels(project, model, version, protocol)));
      child.inc(rows);
    },
  };
  app.addHook('onResponse', (req, reply, done) => {
    metrics.observe(req.method, req.routeOptions.url ?? 'unmatched', reply.statusCode, reply.elapsedTime / 1000);
    done();
  });
  return metrics;
}
