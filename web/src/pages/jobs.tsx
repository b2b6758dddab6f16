/**
 * Training jobs: the list (updating on its own, with a filter and spoken changes) and one job's
 * page, fed by the job's Server-Sent Events: progress and stage, the loss growing epoch by epoch
 * (one curve per fit), the families of the live leaderboard with their cross-validated scores as
 * each finishes, cancel (train scope), a failure's reason, the link to the new version, and the
 * settings the job was started with.
 *
 * The events stream first replays the job's epochs and families' scores that the server still
 * holds in its memory (its 100 most recent jobs, until it restarts), then the job's status; so a
 * page opened late, or after the job ended, draws the curve and the scores from the start.
 */
import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import type uPlot from 'uplot';
import { api, ApiError, followEvents, path } from '../api';
import { Chart, COLORS, type ChartOptions } from '../components/chart';
import { Async, Badge, Button, Card, Empty, ErrorMessage, fmt, fmtDate, Page, ProgressBar, TableWrap } from '../components/ui';
import { announce, useApi, useTitle } from '../hooks';
import { Link } from '../router';
import { useSession } from '../session';
import { addLossPoint, MAX_FITS, type Fit } from './jobs/fits';
import type { LeaderboardEntry, MetricSummary, Task } from './models/types';
import './jobs.css';

type JobStatus = 'queued' | 'running' | 'succeeded' | 'failed' | 'cancelled';

interface JobError {
  code: string;
  message: string;
}
interface ModelRef {
  name: string;
  version: number;
}

/** The request a job was started with, as accepted (`spec` of src/api/jobs.ts). */
interface JobSpec {
  target?: string | string[];
  task?: string;
  model?: string;
  cv?: number;
  nested?: boolean;
  group?: string;
  seed?: number;
  ignore?: string[];
  params?: Record<string, Record<string, unknown>>;
  sequence?: Record<string, unknown>;
}

/** A job as `/v1/jobs` lists it and `/v1/jobs/:id` returns it (`view` of src/api/jobs.ts). */
interface Job {
  id: string;
  name: string;
  dataset: string;
  status: JobStatus;
  progress: number;
  stage: string | null;
  error?: JobError;
  model?: ModelRef;
  spec: JobSpec;
  created: string;
  started: string | null;
  finished: string | null;
}

interface DatasetList {
  datasets: { id: string; name: string }[];
}

/** A family's cross-validated scores, sent once when its last fold is scored. */
interface CandidateScore {
  family: string;
  metrics: Record<string, MetricSummary>;
  seconds: number;
}

/** One server-sent event of a job (`JobEvent` of src/api/services.ts). NaN arrives as null. */
interface JobEvent {
  type: string;
  status?: JobStatus;
  progress?: number;
  stage?: string;
  epoch?: number;
  loss?: number | null;
  valLoss?: number | null;
  candidate?: CandidateScore;
  error?: JobError;
  model?: ModelRef;
}

/** The new version, as much of it as the job's leaderboard reads. */
interface JobVersion {
  family: string;
  task: Task;
  sequence?: unknown;
  metrics?: { leaderboard?: LeaderboardEntry[]; warnings?: string[] };
}

const TERMINAL = new Set<string>(['succeeded', 'failed', 'cancelled']);
const isTerminal = (status: string | undefined): boolean => status !== undefined && TERMINAL.has(status);

const FAMILY_NAMES: Record<string, string> = {
  logistic: 'Logistic regression',
  linear: 'Linear (ridge) regression',
  gbdt: 'Gradient-boosted trees',
  mlp: 'Neural network (MLP)',
  'window-gbdt': 'Window features + boosted trees',
  lstm: 'LSTM network',
  gru: 'GRU network',
  cnn: '1-D convolutional network',
  'cnn-lstm': 'CNN + LSTM network',
};

/** A family's name in words ("Gradient-boosted trees"); an unknown family keeps its own name. */
export function familyName(family: string): string {
  return FAMILY_NAMES[family] ?? family;
}

/** Families that report a loss while they train (per epoch, or every 10 boosting rounds). */
const EPOCH_FAMILIES = new Set(['gbdt', 'window-gbdt', 'mlp', 'lstm', 'gru', 'cnn', 'cnn-lstm']);
/** Of those, the boosted trees: their x axis counts boosting rounds, and no rows are held out. */
const BOOSTED = new Set(['gbdt', 'window-gbdt']);

/** A training stage taken apart: `[nested 1/5: ]<family> fold 2/5`, `… on all rows`, `… scored`… */
export interface ParsedStage {
  family?: string;
  /** The outer fold of nested cross-validation ("1/5"). */
  nested?: string;
  fold?: number;
  folds?: number;
  kind: 'fold' | 'final' | 'importance' | 'scored' | 'other';
}

/** Reads a stage as the trainers write it (src/automl/train.ts, sequence.ts). */
export function parseStage(stage: string | null | undefined): ParsedStage {
  const m = /^(?:nested (\d+\/\d+): )?(\S+) (?:fold (\d+)\/(\d+)|(on all (?:rows|subjects))|(permutation importance)|(scored))$/.exec(stage ?? '');
  if (!m) return { kind: 'other' };
  return {
    family: m[2]!,
    ...(m[1] ? { nested: m[1] } : {}),
    ...(m[3] ? { fold: Number(m[3]), folds: Number(m[4]) } : {}),
    kind: m[3] ? 'fold' : m[5] ? 'final' : m[7] ? 'scored' : 'importance',
  };
}

/** A stage in words: "Gradient-boosted trees: cross-validation fold 2 of 5". */
export function stageText(stage: string | null | undefined, status?: string): string {
  if (!stage) return status === 'queued' ? 'waiting for a training slot' : '–';
  const p = parseStage(stage);
  const nested = p.nested ? `nested CV ${p.nested}: ` : '';
  switch (p.kind) {
    case 'fold':
      return `${nested}${familyName(p.family!)}: cross-validation fold ${p.fold} of ${p.folds}`;
    case 'final':
      return `${familyName(p.family!)}: final fit ${stage.endsWith('subjects') ? 'on all subjects' : 'on all rows'}`;
    case 'importance':
      return `${familyName(p.family!)}: permutation importance`;
    case 'scored':
      return `${familyName(p.family!)}: cross-validation scored`;
    default:
      return stage === 'done' ? 'done' : stage;
  }
}

/** The time from `start` to `end` (a date, or milliseconds since the epoch): "42 s", "3 min 5 s". */
function duration(start: string | null | undefined, end: string | number | null | undefined): string {
  if (!start) return '–';
  const from = new Date(start).getTime();
  const to = typeof end === 'number' ? end : end ? new Date(end).getTime() : NaN;
  if (!Number.isFinite(from) || !Number.isFinite(to)) return '–';
  const s = Math.max(0, Math.round((to - from) / 1000));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

// ─── Jobs ────────────────────────────────────────────────────────────────────────────────────────

/** How a job's new status is said in the list's announcements. */
const STATUS_WORD: Record<JobStatus, string> = { queued: 'queued', running: 'running', succeeded: 'succeeded', failed: 'failed', cancelled: 'cancelled' };

type Filter = 'all' | 'active' | 'succeeded' | 'failed';

function matches(job: Job, filter: Filter): boolean {
  if (filter === 'all') return true;
  if (filter === 'active') return !isTerminal(job.status);
  if (filter === 'failed') return job.status === 'failed' || job.status === 'cancelled';
  return job.status === 'succeeded';
}

/**
 * Every job of the project, newest first. The list reloads every 10 seconds, every 2 while a job is
 * queued or running, and says what changed (a job's new status, a new job) in the live region.
 */
export function JobsPage() {
  useTitle('Jobs');
  const session = useSession();
  const [busy, setBusy] = useState(false);
  const jobs = useApi<{ jobs: Job[] }>('/v1/jobs', busy ? 2_000 : 10_000);
  const datasets = useApi<DatasetList>('/v1/datasets');
  const [filter, setFilter] = useState<Filter>('all');
  /** Each job's status at the previous load (null before the first): what to announce. */
  const seen = useRef<Map<string, JobStatus> | null>(null);
  const sorted = useMemo(() => [...(jobs.data?.jobs ?? [])].sort((a, b) => b.created.localeCompare(a.created)), [jobs.data]);

  useEffect(() => {
    if (!jobs.data) return;
    setBusy(sorted.some((j) => !isTerminal(j.status)));
    const before = seen.current;
    const now = new Map(sorted.map((j) => [j.id, j.status]));
    if (before) {
      const changed = sorted.filter((j) => before.has(j.id) && before.get(j.id) !== j.status);
      const added = sorted.filter((j) => !before.has(j.id));
      const news = [...changed.map((j) => `${j.name} ${STATUS_WORD[j.status]}`), ...added.map((j) => `new job ${j.name}`)];
      if (news.length) announce(`Jobs: ${news.join(', ')}.`);
    }
    seen.current = now;
  }, [jobs.data]);

  const datasetNames = new Map((datasets.data?.datasets ?? []).map((d) => [d.id, d.name]));
  const shown = sorted.filter((j) => matches(j, filter));
  const count = (f: Filter) => sorted.filter((j) => matches(j, f)).length;

  return (
    <Page
      title="Training jobs"
      subtitle={busy ? 'Updating every 2 seconds while a job is queued or running.' : 'Each succeeded job adds a version to its model.'}
      actions={session.can('train') ? <Link href="/train" class="btn btn-primary">New training job</Link> : null}
    >
      <Async res={jobs} what="jobs">
        {() =>
          sorted.length === 0 ? (
            <Card>
              <Empty>No training jobs yet. {session.can('train') ? <Link href="/train">Start one</Link> : 'A key with the train scope can start one.'}</Empty>
            </Card>
          ) : (
            <Card>
              <div class="jobs-filter">
                <label for="jobs-filter">Show</label>
                <select id="jobs-filter" value={filter} onChange={(e) => setFilter((e.target as HTMLSelectElement).value as Filter)}>
                  <option value="all">all jobs ({count('all')})</option>
                  <option value="active">queued or running ({count('active')})</option>
                  <option value="succeeded">succeeded ({count('succeeded')})</option>
                  <option value="failed">failed or cancelled ({count('failed')})</option>
                </select>
              </div>
              {shown.length === 0 ? (
                <Empty>No job matches this filter.</Empty>
              ) : (
                <TableWrap label="Training jobs">
                  <table class="jobs-table" data-testid="jobs-table">
                    <thead>
                      <tr>
                        <th scope="col">Job (model)</th>
                        <th scope="col">Dataset</th>
                        <th scope="col">Status</th>
                        <th scope="col">Progress</th>
                        <th scope="col">Stage</th>
                        <th scope="col">Created</th>
                        <th scope="col">Finished</th>
                        <th scope="col">Version</th>
                      </tr>
                    </thead>
                    <tbody>
                      {shown.map((j) => (
                        <tr key={j.id} data-job={j.id} data-status={j.status}>
                          <td>
                            <Link href={path('/jobs', j.id)}>{j.name}</Link>
                            <div class="muted text-small">{j.id.slice(0, 8)}</div>
                          </td>
                          <td>{datasetNames.has(j.dataset) ? <Link href={path('/datasets', j.dataset)}>{datasetNames.get(j.dataset)}</Link> : <span class="muted">{datasets.data ? 'deleted' : '…'}</span>}</td>
                          <td>
                            <Badge kind={j.status}>{j.status}</Badge>
                          </td>
                          <td class="jobs-progress">
                            <ProgressBar value={j.status === 'succeeded' ? 1 : j.progress} label={`Progress of job ${j.name}`} />
                          </td>
                          <td class="jobs-stage">
                            {j.status === 'failed' ? (
                              <span class="error-text">{j.error?.message ?? 'failed'}</span>
                            ) : j.status === 'cancelled' ? (
                              j.started ? `stopped during ${stageText(j.stage)}` : 'cancelled before it started'
                            ) : (
                              stageText(j.stage, j.status)
                            )}
                          </td>
                          <td>{fmtDate(j.created)}</td>
                          <td>{j.finished ? fmtDate(j.finished) : '–'}</td>
                          <td>{j.model ? <Link href={path('/models', j.model.name, 'versions', j.model.version)}>{`${j.model.name} v${j.model.version}`}</Link> : '–'}</td>
                        </tr>
                      ))}
                    </tbody>
                  </table>
                </TableWrap>
              )}
            </Card>
          )
        }
      </Async>
    </Page>
  );
}

// ─── One job: what its events tell ───────────────────────────────────────────────────────────────

/** A family of the live leaderboard: its cross-validation as the events tell it. */
interface FamilyRun {
  family: string;
  /** Its number of folds; null when only its scores were seen (replayed without its folds). */
  folds: number | null;
  /** The fold in progress (the last one once done). */
  fold: number;
  /** When this page saw its first fold start, and its last end (null: unknown, it was replayed). */
  since: number | null;
  until: number | null;
  /** Whether its cross-validation is over (a later stage began, or its scores arrived). */
  done: boolean;
  /** Its cross-validated scores and time, from the event sent when its last fold was scored. */
  scores?: { metrics: Record<string, MetricSummary>; seconds: number };
}

/** A job as this page follows it: the stored job, updated by each event. */
interface LiveJob {
  status: JobStatus;
  progress: number;
  stage: string | null;
  error?: JobError;
  model?: ModelRef;
  fits: Fit[];
  /** Fits dropped to keep `MAX_FITS` (older searched points' curves). */
  droppedFits: number;
  families: FamilyRun[];
  /**
   * The fit this page joined in the middle of, the server holding none of its earlier epochs (a
   * stream replays them, so only a history past its bound, or a gap, leaves one); null: none.
   */
  joinedLate: string | null;
  /** Epoch points received in all, over every fit. */
  epochs: number;
}

/** The state of a finished job's replayed history: still coming, in, or not to be had. */
type Replay = { state: 'pending' } | { state: 'done' } | { state: 'failed'; error: ApiError };

function liveFrom(job: Job): LiveJob {
  return {
    status: job.status,
    progress: job.progress,
    stage: job.stage,
    ...(job.error ? { error: job.error } : {}),
    ...(job.model ? { model: job.model } : {}),
    fits: [],
    droppedFits: 0,
    families: [],
    joinedLate: null,
    epochs: 0,
  };
}

/**
 * The job after one event. `at` is when this page received it; null for a replayed event, whose
 * time is unknown (a family's time then comes from its scores).
 */
function applyEvent(live: LiveJob, e: JobEvent, at: number | null): LiveJob {
  const next: LiveJob = { ...live };
  if (e.status) next.status = e.status;
  if (typeof e.progress === 'number') next.progress = e.progress;
  if (e.stage !== undefined) next.stage = e.stage;
  if (e.error) next.error = e.error;
  if (e.model) next.model = e.model;
  if (e.status === 'succeeded') next.progress = 1;

  // The leaderboard's families: a fold of a new family starts it (and ends the one before);
  // a final fit, importance, scores or the end close whatever is open. Nested CV's inner folds are
  // not the leaderboard's.
  const stage = parseStage(e.stage);
  if (e.stage !== undefined && !stage.nested) {
    let runs = live.families;
    if (stage.kind === 'fold') {
      const i = runs.findIndex((r) => r.family === stage.family);
      if (i < 0) {
        runs = [...runs.map((r) => (r.done ? r : { ...r, until: at, done: true })), { family: stage.family!, folds: stage.folds!, fold: stage.fold!, since: at, until: null, done: false }];
      } else if (runs[i]!.fold !== stage.fold) {
        runs = runs.map((r, j) => (j === i ? { ...r, fold: stage.fold! } : r));
      }
    } else if ((stage.kind !== 'other' || e.stage === 'done') && runs.some((r) => !r.done)) {
      runs = runs.map((r) => (r.done ? r : { ...r, fold: r.folds ?? r.fold, until: at, done: true }));
    }
    next.families = runs;
  }
  // A family's scores, as soon as its cross-validation is scored.
  if (e.candidate) {
    const { family, metrics, seconds } = e.candidate;
    const scores = { metrics, seconds };
    const runs = next.families;
    const i = runs.findIndex((r) => r.family === family);
    next.families =
      i < 0
        ? [...runs, { family, folds: null, fold: 0, since: null, until: at, done: true, scores }]
        : runs.map((r, j) => (j === i ? { ...r, fold: r.folds ?? r.fold, until: r.done ? r.until : at, done: true, scores } : r));
  }

  // A loss point: the fit goes on, or a new one begins (another stage, or the epochs start over).
  if (typeof e.epoch === 'number' && (typeof e.loss === 'number' || typeof e.valLoss === 'number')) {
    const label = e.stage ?? live.stage ?? 'training';
    const { fits, added, dropped } = addLossPoint(live.fits, label, parseStage(label).family ?? '', e.epoch, e.loss ?? null, e.valLoss ?? null);
    next.fits = fits;
    if (added) next.epochs = live.epochs + 1;
    if (dropped) next.droppedFits = live.droppedFits + dropped;
  }
  return next;
}

/**
 * The job after a stream's replayed history (its epochs and families' scores so far, from the
 * start): the curves and families are rebuilt from it, unless this page already holds more (the
 * server keeps a job's first 5,000 such events); then only the scores are taken.
 */
function replayHistory(live: LiveJob, past: JobEvent[], at: number): LiveJob {
  if (!past.length) return live;
  const rebuilt = past.reduce<LiveJob>((s, e) => applyEvent(s, e, null), { ...live, fits: [], droppedFits: 0, families: [], joinedLate: null, epochs: 0 });
  if (rebuilt.epochs >= live.epochs) return rebuilt;
  return past.reduce<LiveJob>((s, e) => (e.candidate ? applyEvent(s, { type: 'progress', candidate: e.candidate }, at) : s), live);
}

/**
 * The job once a stream has replayed its history and sent its status: joined late when it is
 * running a fit that reports epochs and none of that fit's epochs came with the history.
 */
function joinStream(live: LiveJob, past: JobEvent[], status: JobEvent, at: number): LiveJob {
  const next = applyEvent(replayHistory(live, past, at), status, at);
  const stage = parseStage(status.stage);
  const late =
    status.status === 'running' &&
    (status.progress ?? 0) > 0 &&
    (stage.kind === 'fold' || stage.kind === 'final') &&
    EPOCH_FAMILIES.has(stage.family!) &&
    !next.fits.some((f) => f.label === status.stage);
  return late ? { ...next, joinedLate: status.stage! } : next;
}

// ─── One job ─────────────────────────────────────────────────────────────────────────────────────

const METRIC_LABEL: Record<string, string> = { auroc: 'AUROC', r2: 'R²', accuracy: 'Accuracy' };

/** One job's page; a new id starts afresh (its own stream and state). */
export function JobPage({ id }: { id: string }) {
  return <JobView key={id} id={id} />;
}

/**
 * A job: its stored record (`/v1/jobs/:id`), then its events while it is queued or running; the
 * stream is reopened with a growing delay when it breaks. A job that had already finished when
 * the page opened is followed once, for the history the server replays, and not retried.
 */
function JobView({ id }: { id: string }) {
  const session = useSession();
  const job = useApi<Job>(path('/v1/jobs', id));
  const [live, setLive] = useState<LiveJob | null>(null);
  const [conn, setConn] = useState<{ error: ApiError | null; retry: number }>({ error: null, retry: 0 });
  const [now, setNow] = useState(Date.now());
  const [replay, setReplay] = useState<Replay>({ state: 'pending' });
  /** The status last announced (null before the first). */
  const lastStatus = useRef<JobStatus | null>(null);
  /** Whether the job had finished when the page first loaded it (null until it loads). */
  const finishedOnArrival = useRef<boolean | null>(null);
  if (finishedOnArrival.current === null && job.data) finishedOnArrival.current = isTerminal(job.data.status);
  useTitle(job.data ? `Job ${job.data.name}` : 'Job');

  // The stored record: the start of the live state, and the outcome when the job has ended.
  useEffect(() => {
    const j = job.data;
    if (!j) return;
    setLive((l) =>
      l
        ? isTerminal(j.status)
          ? { ...l, status: j.status, progress: j.status === 'succeeded' ? 1 : l.progress, stage: j.stage ?? l.stage, ...(j.error ? { error: j.error } : {}), ...(j.model ? { model: j.model } : {}) }
          : l
        : liveFrom(j),
    );
  }, [job.data]);

  const status = live?.status;
  const running = live !== null && !isTerminal(status);
  const following = running || (live !== null && finishedOnArrival.current === true && replay.state === 'pending');

  useEffect(() => {
    if (!following) return;
    // A job that had ended before the page opened: one stream, for the history it replays.
    const historyOnly = isTerminal(status);
    /** The events before the stream's first status: the replayed history, applied at once. */
    let past: JobEvent[] | null = [];
    let ended = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const stop = followEvents(
      path('/v1/jobs', id, 'events'),
      (type, data) => {
        if (typeof data !== 'object' || !data) return;
        const e = { type, ...data } as JobEvent;
        if (e.status && isTerminal(e.status)) ended = true;
        const at = Date.now();
        if (past) {
          if (e.type !== 'status') {
            past.push(e);
            return;
          }
          const history = past;
          past = null;
          setLive((l) => l && joinStream(l, history, e, at));
          if (historyOnly) setReplay({ state: 'done' });
        } else {
          setLive((l) => l && applyEvent(l, e, at));
        }
        setConn((c) => (c.error ? { ...c, error: null } : c));
      },
      (error) => {
        if (past?.length) {
          const history = past;
          setLive((l) => l && replayHistory(l, history, Date.now()));
        }
        past = null;
        if (historyOnly) {
          setReplay(error && !ended ? { state: 'failed', error } : { state: 'done' });
        } else if (ended) {
          job.reload();
        } else {
          setConn((c) => ({ error: error ?? new ApiError('The live connection to the job ended; reconnecting…', 0), retry: c.retry }));
          // A job that is gone or not this key's to read is not worth retrying.
          if (!error || (error.status !== 404 && error.status !== 403)) {
            timer = setTimeout(() => {
              job.reload();
              setConn((c) => ({ ...c, retry: c.retry + 1 }));
            }, Math.min(10_000, 1000 * 2 ** Math.min(conn.retry, 4)));
          }
        }
      },
    );
    return () => {
      stop();
      clearTimeout(timer);
    };
  }, [id, following, conn.retry]);

  // Say the job's new status (not the one it had when the page opened).
  useEffect(() => {
    if (!live || !job.data) return;
    const before = lastStatus.current;
    lastStatus.current = live.status;
    if (before === null || before === live.status) return;
    const name = job.data.name;
    if (live.status === 'succeeded') announce(`Job ${name} succeeded${live.model ? `: model ${live.model.name} version ${live.model.version} is ready` : ''}.`);
    else if (live.status === 'failed') announce(`Job ${name} failed: ${live.error?.message ?? 'see the page'}`);
    else if (live.status === 'cancelled') announce(`Job ${name} was cancelled.`);
    else if (live.status === 'running') announce(`Job ${name} is running.`);
  }, [live?.status]);

  // The "Running for" clock.
  useEffect(() => {
    if (!running) return;
    const t = setInterval(() => setNow(Date.now()), 1000);
    return () => clearInterval(t);
  }, [running]);

  const datasets = useApi<DatasetList>('/v1/datasets');
  const version = useApi<JobVersion>(live?.model ? path('/v1/models', live.model.name, 'versions', live.model.version) : null);

  if (!job.data) {
    return <Page title="Training job">{job.error ? <ErrorMessage error={job.error} /> : <p class="muted">Loading the job…</p>}</Page>;
  }
  const j = job.data;
  const shown = live ?? liveFrom(j);
  const over = isTerminal(shown.status);
  const datasetName = datasets.data?.datasets.find((d) => d.id === j.dataset)?.name;

  return (
    <Page
      title={
        <>
          Job {j.name} <Badge kind={shown.status}>{shown.status}</Badge>
        </>
      }
      subtitle={
        <>
          Dataset {datasetName ? <Link href={path('/datasets', j.dataset)}>{datasetName}</Link> : <code>{j.dataset.slice(0, 8)}</code>} · target <strong>{String(j.spec.target ?? '–')}</strong> · created {fmtDate(j.created)}
        </>
      }
      actions={
        <>
          <Link href="/jobs">All jobs</Link>
          {session.can('train') && !over ? <CancelJob id={j.id} name={j.name} onDone={() => job.reload()} /> : null}
        </>
      }
    >
      {shown.status === 'succeeded' && shown.model ? (
        <div class="notice job-success" data-testid="job-success">
          <p>
            <strong>
              Model {shown.model.name}, version {shown.model.version}, is ready.
            </strong>{' '}
            Its metrics, curves and predictions are on the version's page.
          </p>
          <Link href={path('/models', shown.model.name, 'versions', shown.model.version)} class="btn btn-primary">
            Open {shown.model.name} version {shown.model.version}
          </Link>
        </div>
      ) : null}
      {shown.status === 'failed' ? <FailureNotice error={shown.error} /> : null}
      {shown.status === 'cancelled' ? <p class="notice">This job was cancelled{j.finished ? ` at ${fmtDate(j.finished)}` : ''}; nothing was registered.</p> : null}
      {conn.error && following ? (
        <p class="notice" role="status">
          {conn.error.message} {conn.error.status === 0 ? null : 'Reconnecting…'}
        </p>
      ) : null}
      <Card title="Progress">
        <div class="job-progress">
          <ProgressBar value={shown.status === 'succeeded' ? 1 : shown.progress} label={`Progress of job ${j.name}`} />
        </div>
        <dl class="job-facts">
          <div>
            <dt>Stage</dt>
            <dd data-testid="job-stage">{shown.status === 'succeeded' ? 'done' : shown.status === 'failed' ? 'stopped by the failure' : stageText(shown.stage, shown.status)}</dd>
          </div>
          <div>
            <dt>Started</dt>
            <dd>{j.started ? fmtDate(j.started) : shown.status === 'queued' ? 'not yet' : '–'}</dd>
          </div>
          <div>
            <dt>{over ? 'Took' : 'Running for'}</dt>
            <dd>{over ? duration(j.started, j.finished) : j.started ? duration(j.started, now) : '–'}</dd>
          </div>
          {j.finished ? (
            <div>
              <dt>Finished</dt>
              <dd>{fmtDate(j.finished)}</dd>
            </div>
          ) : null}
        </dl>
      </Card>
      <div class="grid2 job-grid">
        <LossCard live={shown} spec={j.spec} replay={finishedOnArrival.current === true ? replay : null} />
        <Leaderboard live={shown} version={version.data} versionError={version.error} spec={j.spec} replaying={finishedOnArrival.current === true && replay.state === 'pending'} />
      </div>
      <SettingsCard spec={j.spec} />
    </Page>
  );
}

/** What each error code means for a job, in words. */
const FAILURE_HEADLINES: Record<string, string> = {
  MEDFIT_ERR_BAD_DATA: 'The data could not be trained on',
  MEDFIT_ERR_BAD_PARAM: 'A setting was refused',
  MEDFIT_ERR_USAGE: 'The settings do not fit this data',
  MEDFIT_ERR_NOT_FOUND: 'Something the job needed is gone',
  MEDFIT_ERR_INTERNAL: 'The training worker failed',
};

/** Why the job failed, and what to do about it. */
function FailureNotice({ error }: { error: JobError | undefined }) {
  return (
    <div class="error job-failure" role="alert" data-testid="job-failure">
      <strong>Training failed: {(error && FAILURE_HEADLINES[error.code]) ?? 'the job stopped with an error'}.</strong>
      <p>{error?.message ?? 'The server gave no reason.'}</p>
      <p class="text-small">Change the settings and start a new job; the data and the other jobs are not affected.</p>
    </div>
  );
}

/** Cancel, asked twice: the confirming button takes the focus, "Keep training" backs out. */
function CancelJob({ id, name, onDone }: { id: string; name: string; onDone: () => void }) {
  const [asking, setAsking] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<Error | null>(null);
  const confirm = useRef<HTMLButtonElement>(null);
  useEffect(() => {
    if (asking) confirm.current?.focus();
  }, [asking]);

  if (!asking) {
    return (
      <Button
        kind="danger"
        onClick={() => {
          setAsking(true);
          setError(null);
          announce(`Cancel job ${name}? Press "Yes, cancel the job" to stop it, or "Keep training".`);
        }}
      >
        Cancel job
      </Button>
    );
  }
  return (
    <span class="cancel-confirm">
      <span class="muted">Stop this job? Its work so far is lost.</span>
      <button
        type="button"
        class="btn btn-danger"
        ref={confirm}
        disabled={busy}
        onClick={async () => {
          setBusy(true);
          try {
            await api(path('/v1/jobs', id, 'cancel'), { method: 'POST' });
            announce(`Job ${name} cancelled.`);
            setAsking(false);
          } catch (err) {
            setError(err as Error);
            announce(`The job could not be cancelled: ${(err as Error).message}`);
          } finally {
            setBusy(false);
            onDone();
          }
        }}
      >
        Yes, cancel the job
      </button>
      <Button
        onClick={() => {
          setAsking(false);
          announce('The job keeps training.');
        }}
      >
        Keep training
      </Button>
      {error ? <ErrorMessage error={error} /> : null}
    </span>
  );
}

// ─── The loss ────────────────────────────────────────────────────────────────────────────────────

const lossOptions = (xLabel: string, withValidation: boolean, log: boolean): ChartOptions => ({
  scales: { x: { time: false }, y: log ? { distr: 3 } : {} },
  axes: [
    { label: xLabel, stroke: '#4f5b67', grid: { stroke: '#eef1f4' } },
    { label: 'Loss', stroke: '#4f5b67', grid: { stroke: '#eef1f4' }, size: 60 },
  ],
  series: [
    { label: xLabel },
    { label: 'Training loss', stroke: COLORS[0], width: 2, points: { show: true, size: 5 }, value: (_u, v) => fmt(v, 4) },
    ...(withValidation ? [{ label: 'Validation loss', stroke: COLORS[1], width: 2, dash: [6, 4], points: { show: true, size: 5 }, value: (_u: uPlot, v: number | null) => fmt(v, 4) }] : []),
  ],
  legend: { live: true },
  cursor: { drag: { x: false, y: false } },
});

/**
 * The loss by epoch of one fit (the newest, or one picked), with a table of every fit. `replay`:
 * the state of the replayed history of a job that had finished when the page opened (else null).
 */
function LossCard({ live, spec, replay }: { live: LiveJob; spec: JobSpec; replay: Replay | null }) {
  const [pick, setPick] = useState('latest');
  const [logScale, setLogScale] = useState(false);
  const fits = live.fits;
  // A picked fit dropped since (`MAX_FITS`) gives way to the newest, in the list too.
  const picked = pick === 'latest' ? undefined : fits.find((f) => f.label === pick);
  const shown = picked ?? fits[fits.length - 1];
  const boosted = shown ? BOOSTED.has(shown.family) : false;
  const xLabel = boosted ? 'Boosting round' : 'Epoch';
  const hasVal = shown ? shown.val.some((v) => v !== null) : false;
  // A logarithmic axis needs every value above 0.
  const positive = !!shown && shown.loss.every((v) => v === null || v > 0) && shown.val.every((v) => v === null || v > 0);
  const log = logScale && positive;
  const options = useMemo(() => lossOptions(xLabel, hasVal, log), [xLabel, hasVal, log]);
  const data = useMemo<uPlot.AlignedData | null>(() => (shown ? [shown.epochs, shown.loss, ...(hasVal ? [shown.val] : [])] : null), [shown, hasVal]);
  const model = String(spec.model ?? 'auto');
  const stage = parseStage(live.stage);
  // The family training now is fitted without epochs (a solver).
  const solverOnly = stage.family !== undefined && !EPOCH_FAMILIES.has(stage.family);
  const scoresReplayed = live.families.some((f) => f.scores);
  const stopped = live.status === 'failed' ? 'failed' : 'was cancelled';

  /** Why there is no curve (yet). */
  const note = ((): string => {
    if (replay?.state === 'pending') return 'Loading the loss curve…';
    if (replay?.state === 'failed') return `The loss curve could not be loaded: ${replay.error.message}`;
    if (replay && !scoresReplayed) {
      // Nothing came back: the server no longer holds this job's history.
      return live.status === 'succeeded'
        ? "This job's epochs are no longer in the server's memory, so its loss curve cannot be shown; the cross-validated scores are in the leaderboard."
        : `No loss curve: none was reported before the job ${stopped}, or the server no longer holds it in its memory.`;
    }
    if (live.status === 'queued') return 'The job is waiting for a training slot; its loss appears here epoch by epoch once it trains.';
    if (live.status === 'failed' || live.status === 'cancelled') return `No loss was reported before the job ${stopped}.`;
    if (solverOnly) {
      return `${familyName(stage.family!)} is fitted by a solver in one go (no epochs), so it has no loss curve: the progress bar and the leaderboard show its cross-validation folds.${model === 'auto' ? ' Gradient-boosted trees, tried next, report their training loss every 10 rounds.' : ''}`;
    }
    if (live.status === 'succeeded') return 'No loss was reported: the families trained are fitted in one go (no epochs).';
    return 'Waiting for the first epoch…';
  })();
  // The replay's bounds, said wherever the curve (or its absence) depends on them.
  const showReplayNote = replay !== null && (fits.length > 0 || replay.state !== 'done' || !scoresReplayed);

  const last = shown ? shown.epochs.length - 1 : -1;
  const chartLabel = shown
    ? `Loss of ${shown.label} by ${xLabel.toLowerCase()}: ${shown.epochs.length} point${shown.epochs.length === 1 ? '' : 's'}; last training loss ${fmt(shown.loss[last] ?? null, 4)}${hasVal ? `, validation loss ${fmt(shown.val[last] ?? null, 4)}` : ''}.`
    : '';

  return (
    <Card title="Loss by epoch" class="loss-card">
      <div data-testid="loss" data-points={shown ? shown.epochs.length : 0} data-fits={fits.length} data-epochs={live.epochs}>
        {fits.length > 1 ? (
          <div class="field loss-pick">
            <label for="loss-fit">Fit shown</label>
            <select id="loss-fit" value={picked ? pick : 'latest'} onChange={(e) => setPick((e.target as HTMLSelectElement).value)}>
              <option value="latest">the newest ({fits[fits.length - 1]!.label})</option>
              {fits.map((f) => (
                <option key={f.label} value={f.label}>
                  {f.label} ({f.epochs.length} points)
                </option>
              ))}
            </select>
            {live.droppedFits > 0 ? (
              <p class="hint" data-testid="loss-dropped">
                {live.droppedFits} older fit{live.droppedFits === 1 ? ' is' : 's are'} no longer listed: at most {MAX_FITS} are kept, and searched points' and nested CV's inner fits give way first.
              </p>
            ) : null}
          </div>
        ) : null}
        {shown && data ? (
          <>
            <p class="muted text-small">
              {stageText(shown.label)}: {boosted ? 'training log loss every 10 boosting rounds (no validation rows are held out)' : hasVal ? 'training loss and the loss on the rows held out for early stopping' : 'training loss'}. Each fold trains a fresh model, so the
              curve starts again at each fold.
            </p>
            <Chart options={options} data={data} label={chartLabel} height={240} />
            <label class="log-toggle">
              <input type="checkbox" checked={logScale} disabled={!positive} onChange={(e) => setLogScale((e.target as HTMLInputElement).checked)} /> Logarithmic loss axis (shows the late, small improvements)
            </label>
          </>
        ) : (
          <p class="muted">{note}</p>
        )}
        {shown && live.joinedLate === shown.label ? <p class="muted text-small">This page was opened while this fit was training, and the server no longer held its earlier epochs: they are not shown.</p> : null}
        {showReplayNote ? (
          <p class="muted text-small">
            A finished job's curve comes from the server's memory, which keeps the first 5,000 points of its 100 most recent jobs until it restarts.
          </p>
        ) : null}
        {fits.length ? (
          <details class="loss-table">
            <summary>Loss per fit, as a table</summary>
            <TableWrap label="Loss per fit">
              <table>
                <thead>
                  <tr>
                    <th scope="col">Fit</th>
                    <th scope="col" class="num">Points</th>
                    <th scope="col" class="num">First loss</th>
                    <th scope="col" class="num">Last loss</th>
                    <th scope="col" class="num">Best validation</th>
                  </tr>
                </thead>
                <tbody>
                  {fits.map((f) => {
                    const val = f.val.filter((v): v is number => v !== null);
                    return (
                      <tr key={f.label}>
                        <td>{f.label}</td>
                        <td class="num">{f.epochs.length}</td>
                        <td class="num">{fmt(f.loss[0] ?? null, 4)}</td>
                        <td class="num">{fmt(f.loss[f.loss.length - 1] ?? null, 4)}</td>
                        <td class="num">{val.length ? fmt(Math.min(...val), 4) : '–'}</td>
                      </tr>
                    );
                  })}
                </tbody>
              </table>
            </TableWrap>
          </details>
        ) : null}
      </div>
    </Card>
  );
}

// ─── The leaderboard ─────────────────────────────────────────────────────────────────────────────

/** The scores the live leaderboard shows, the first one a family's metrics hold. */
const LIVE_METRICS = ['auroc', 'accuracy', 'r2'];
const liveMetric = (metrics: Record<string, MetricSummary>): string | undefined => LIVE_METRICS.find((m) => metrics[m] !== undefined);

/**
 * The families compared: the version's stored leaderboard once the job succeeded and its version
 * loaded; until then the families as the events tell them, each with its cross-validated score
 * and time as soon as its last fold is scored. `replaying`: a finished job's history is on its way.
 */
function Leaderboard({ live, version, versionError, spec, replaying }: { live: LiveJob; version: JobVersion | null; versionError: ApiError | null; spec: JobSpec; replaying: boolean }) {
  const board = version?.metrics?.leaderboard;
  const main = version ? (version.task === 'regression' ? 'r2' : version.sequence ? 'accuracy' : 'auroc') : null;
  const folds = typeof spec.cv === 'number' ? spec.cv : 5;
  const model = String(spec.model ?? 'auto');

  if (board && board.length && main) {
    const first = board[0]!;
    const metric = first.metrics[main] ? main : (Object.keys(first.metrics)[0] ?? main);
    return (
      <Card title="Leaderboard" class="leaderboard">
        <p class="muted text-small">Families compared by {folds}-fold cross-validation on the same folds, best first; the best was refitted on all the data.</p>
        <TableWrap label="Leaderboard of families">
          <table data-testid="leaderboard">
            <thead>
              <tr>
                <th scope="col">Family</th>
                <th scope="col" class="num">
                  CV {METRIC_LABEL[metric] ?? metric} (mean ± std)
                </th>
                <th scope="col" class="num">Time</th>
              </tr>
            </thead>
            <tbody>
              {board.map((r) => (
                <tr key={r.family}>
                  <td>
                    {familyName(r.family)} {r.family === version!.family ? <Badge kind="ok">chosen</Badge> : null}
                  </td>
                  <td class="num">
                    {fmt(r.metrics[metric]?.mean ?? null)} ± {fmt(r.metrics[metric]?.std ?? null)}
                  </td>
                  <td class="num">{fmt(r.seconds, 1)} s</td>
                </tr>
              ))}
            </tbody>
          </table>
        </TableWrap>
        {version?.metrics?.warnings?.length ? (
          <ul class="text-small warn-list">
            {version.metrics.warnings.map((w) => (
              <li key={w}>{w}</li>
            ))}
          </ul>
        ) : null}
      </Card>
    );
  }

  const runs = live.families;
  const over = isTerminal(live.status);
  const scored = runs.find((r) => r.scores);
  const metric = scored ? liveMetric(scored.scores!.metrics) : undefined;
  return (
    <Card title="Leaderboard" class="leaderboard">
      {versionError ? <ErrorMessage error={versionError} /> : null}
      {runs.length === 0 ? (
        <p class="muted">
          {replaying || live.status === 'succeeded'
            ? 'Loading the scores of the families tried…'
            : over
              ? 'No family finished its cross-validation.'
              : model === 'auto'
                ? 'Families appear here as they are cross-validated, with their scores as they finish (auto tries a linear model and gradient-boosted trees, and a neural network from 2,000 rows).'
                : `${familyName(model)} appears here as it is cross-validated, with its score when it finishes.`}
        </p>
      ) : (
        <>
          <p class="muted text-small">
            Families appear with their cross-validated scores as they finish (mean ± std over the folds){live.status === 'succeeded' ? '; loading the leaderboard of the new version…' : '.'}
          </p>
          <TableWrap label="Families being cross-validated">
            <table data-testid="leaderboard-live">
              <thead>
                <tr>
                  <th scope="col">Family</th>
                  <th scope="col">Folds</th>
                  <th scope="col" class="num">
                    CV {metric ? (METRIC_LABEL[metric] ?? metric) : 'score'} (mean ± std)
                  </th>
                  <th scope="col" class="num">Time</th>
                </tr>
              </thead>
              <tbody>
                {runs.map((r) => (
                  <tr key={r.family}>
                    <td>{familyName(r.family)}</td>
                    <td>
                      {!r.done ? (
                        over ? (
                          `stopped at fold ${r.fold} of ${r.folds}`
                        ) : (
                          <span class="fold-progress">
                            <ProgressBar value={(r.fold - 1) / (r.folds ?? 1)} label={`${familyName(r.family)}: folds done`} />
                            <span class="text-small">
                              fold {r.fold} of {r.folds}
                            </span>
                          </span>
                        )
                      ) : (
                        <Badge kind="ok">{r.folds === null ? 'all folds done' : `${r.folds} of ${r.folds} done`}</Badge>
                      )}
                    </td>
                    <td class="num">{r.scores && metric ? `${fmt(r.scores.metrics[metric]?.mean ?? null)} ± ${fmt(r.scores.metrics[metric]?.std ?? null)}` : !r.done && !over ? '…' : '–'}</td>
                    <td class="num">
                      {r.scores
                        ? `${fmt(r.scores.seconds, 1)} s`
                        : !r.done
                          ? over
                            ? '–'
                            : '…'
                          : r.since !== null && r.until !== null
                            ? `${fmt((r.until - r.since) / 1000, 1)} s`
                            : '–'}
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </TableWrap>
        </>
      )}
    </Card>
  );
}

// ─── The settings ────────────────────────────────────────────────────────────────────────────────

/** The settings the job was started with (what was left out took its default). */
function SettingsCard({ spec }: { spec: JobSpec }) {
  const rows: [string, string][] = [];
  const add = (label: string, value: unknown) => {
    if (value === null || value === undefined || (Array.isArray(value) && value.length === 0)) return;
    rows.push([label, Array.isArray(value) ? value.join(', ') : typeof value === 'object' ? JSON.stringify(value) : String(value)]);
  };
  add('Target', spec.target);
  add('Task', spec.task ?? 'auto');
  add('Family', spec.model ? (spec.model === 'auto' ? 'auto' : familyName(String(spec.model))) : 'auto');
  add('Cross-validation folds', spec.cv ?? 5);
  add('Nested cross-validation', spec.nested ? 'yes' : undefined);
  add('Grouped by', spec.group);
  add('Seed', spec.seed ?? 0);
  add('Left out', spec.ignore);
  for (const [family, params] of Object.entries(spec.params ?? {})) {
    for (const [name, value] of Object.entries(params)) add(`${family}.${name}`, value);
  }
  const seq = spec.sequence;
  if (seq) {
    rows.push(['Sequence job', 'windows of sensor streams']);
    for (const [name, value] of Object.entries(seq)) add(`sequence.${name}`, value);
  }
  return (
    <Card title="Settings">
      {rows.length ? (
        <dl class="job-settings">
          {rows.map(([label, value]) => (
            <div key={label}>
              <dt>{label}</dt>
              <dd>{value}</dd>
            </div>
          ))}
        </dl>
      ) : (
        <Empty>Defaults throughout.</Empty>
      )}
    </Card>
  );
}
