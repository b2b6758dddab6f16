/**
 * The model registry in the browser: the models, one model's versions (stages, a comparison
 * picker), a version's evidence (metrics with their meanings and intervals, curves, calibration,
 * the confusion matrix at a threshold, importance, leaderboard, lineage, schema), and two versions
 * side by side. Everything shown comes from out-of-fold predictions stored with the version.
 */
import type { ComponentChildren } from 'preact';
import { useEffect, useId, useMemo, useState } from 'preact/hooks';
import { api, ApiError, path } from '../api';
import { Async, Badge, Button, Card, Empty, ErrorMessage, Field, fmt, fmtDate, Page, TableWrap } from '../components/ui';
import { announce, useApi, useTitle } from '../hooks';
import { Link, navigate, setQuery, useLocation } from '../router';
import { useSession } from '../session';
import { HeatTable, ThresholdPanel } from './models/confusion';
import { decimalsFor, fx, fxPair, goalText, metricGoal, metricLabel, metricMeaning, metricOrder, num, verdict, wilson, type MetricContext } from './models/meanings';
import { HeatGrid, ImportanceBars, PrChart, prIndex, ReliabilityChart, ResidualChart, RocChart, type RocSeries } from './models/plots';
import { operatingPoint } from './models/threshold';
import { STAGES, type Calibration, type CalibrationMethod, type MetricSummary, type ModelDetail, type ModelList, type SearchSummary, type Stage, type TrainedVersion, type UploadedVersion, type VersionDetail, type VersionSummary } from './models/types';
import './models.css';

const modelHref = (name: string) => `/models/${encodeURIComponent(name)}`;
const versionHref = (name: string, v: number | string) => `${modelHref(name)}/versions/${encodeURIComponent(String(v))}`;
const compareHref = (name: string, a: number | string | null, b: number | string | null) =>
  `${modelHref(name)}/compare${a !== null || b !== null ? `?${[a !== null ? `a=${a}` : '', b !== null ? `b=${b}` : ''].filter(Boolean).join('&')}` : ''}`;
const STAGE_TEXT: Record<Stage, string> = { none: 'no stage', staging: 'staging', production: 'production', archived: 'archived' };

/** The shared page frame, inside a box the area's styles are scoped to. */
function MPage(props: Parameters<typeof Page>[0]) {
  return (
    <div class="models-area">
      <Page {...props} />
    </div>
  );
}

function StageBadge({ stage }: { stage: Stage }) {
  return <Badge kind={stage}>{STAGE_TEXT[stage] ?? stage}</Badge>;
}

/** The metric a model is judged by first: AUROC for classifiers, R² for regression. */
const mainMetric = (task: string) => (task === 'regression' ? 'r2' : 'auroc');
const meanSd = (m: MetricSummary | undefined) => (m ? fxPair(m.mean, m.std) : '–');

// ─── Models ──────────────────────────────────────────────────────────────────────────────────────

/** Every model of the project: versions, latest, production, task. */
export function ModelsPage() {
  useTitle('Models');
  const session = useSession();
  const res = useApi<ModelList>('/v1/models', 15_000);
  return (
    <MPage
      title="Models"
      subtitle="Every model of this project. Each succeeded training job adds a version; stages say which version serves."
      actions={session.can('train') ? <Link href="/train" class="btn btn-primary">Train a model</Link> : null}
    >
      <Card>
        <Async res={res} what="models">
          {(d) =>
            d.models.length ? (
              <TableWrap label="Models">
                <table class="stack-table" role="table">
                  <thead role="rowgroup">
                    <tr role="row">
                      <th scope="col">Model</th>
                      <th scope="col">Task</th>
                      <th scope="col" class="num">Versions</th>
                      <th scope="col">Latest</th>
                      <th scope="col">In production</th>
                    </tr>
                  </thead>
                  <tbody role="rowgroup">
                    {d.models.map((m) => (
                      <tr key={m.name} role="row">
                        <th scope="row" role="rowheader">
                          <Link href={modelHref(m.name)}>{m.name}</Link>
                        </th>
                        <td role="cell" data-label="Task">{m.task}</td>
                        <td role="cell" class="num" data-label="Versions">{m.versions}</td>
                        <td role="cell" data-label="Latest">
                          <Link href={versionHref(m.name, m.latest)} aria-label={`${m.name} version ${m.latest} (latest)`}>
                            version {m.latest}
                          </Link>
                        </td>
                        <td role="cell" data-label="In production">
                          {m.production !== null ? (
                            <Link href={versionHref(m.name, m.production)} aria-label={`${m.name} version ${m.production} (production)`}>
                              version {m.production}
                            </Link>
                          ) : (
                            <span class="muted">none</span>
                          )}
                        </td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              </TableWrap>
            ) : (
              <Empty>No models yet. {session.can('train') ? <Link href="/train">Train one</Link> : 'A key with the train scope can train one.'}</Empty>
            )
          }
        </Async>
      </Card>
    </MPage>
  );
}

// ─── Stage changes ───────────────────────────────────────────────────────────────────────────────

/** Moves a version to a stage (train scope). Production archives the previous production version. */
function StageControl(props: { name: string; version: number; stage: Stage; production: number | null; onChanged: () => void; compact?: boolean }) {
  const { name, version, stage, production } = props;
  const [to, setTo] = useState<Stage>(stage);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<ApiError | null>(null);
  const id = useId();
  useEffect(() => setTo(stage), [stage]);
  const submit = async (e: Event) => {
    e.preventDefault();
    if (to === stage) return;
    setBusy(true);
    setError(null);
    try {
      await api(path('/v1/models', name, 'versions', version, 'stage'), { body: { stage: to } });
      const archived = to === 'production' && production !== null && production !== version ? `; version ${production} archived` : '';
      announce(`${name} version ${version} moved to ${STAGE_TEXT[to]}${archived}.`);
      props.onChanged();
    } catch (err) {
      if ((err as Error).name !== 'AbortError') setError(err instanceof ApiError ? err : new ApiError((err as Error).message, 0));
    } finally {
      setBusy(false);
    }
  };
  return (
    <form class={`stage-form ${props.compact ? 'stage-compact' : ''}`} onSubmit={submit}>
      <label for={id}>{props.compact ? 'Move to' : `Stage of version ${version}`}</label>
      <select id={id} value={to} onChange={(e) => setTo((e.currentTarget as HTMLSelectElement).value as Stage)} aria-describedby={to === 'production' && production !== null && production !== version ? `${id}-hint` : undefined}>
        {STAGES.map((s) => (
          <option key={s} value={s}>
            {STAGE_TEXT[s]}
          </option>
        ))}
      </select>
      <button type="submit" class="btn" disabled={busy || to === stage} aria-label={props.compact ? `Set stage of version ${version}` : undefined}>
        {busy ? 'Saving…' : 'Set stage'}
      </button>
      {to === 'production' && production !== null && production !== version ? (
        <p class="hint" id={`${id}-hint`}>
          Version {production} will be archived.
        </p>
      ) : null}
      {error ? <ErrorMessage error={error} /> : null}
    </form>
  );
}

// ─── One model ───────────────────────────────────────────────────────────────────────────────────

/** One model: every version with its stage, main metric and stage change, and a comparison picker. */
export function ModelPage({ name }: { name: string }) {
  useTitle(`Model ${name}`);
  const session = useSession();
  const res = useApi<ModelDetail>(path('/v1/models', name));
  return (
    <MPage title={`Model ${name}`} subtitle={<Link href="/models">All models</Link>}>
      <Async res={res} what="the model">
        {(d) => {
          const production = d.versions.find((v) => v.stage === 'production')?.version ?? null;
          const newestFirst = [...d.versions].sort((a, b) => b.version - a.version);
          return (
            <>
              <Card title={`Versions (${d.versions.length})`}>
                <TableWrap label={`Versions of ${name}`}>
                  <table class="versions stack-table" role="table">
                    <thead role="rowgroup">
                      <tr role="row">
                        <th scope="col">Version</th>
                        <th scope="col">Family</th>
                        <th scope="col">Task</th>
                        <th scope="col">Stage</th>
                        <th scope="col">Created</th>
                        <th scope="col" class="num">Cross-validated</th>
                        {session.can('train') ? <th scope="col">Change stage</th> : null}
                      </tr>
                    </thead>
                    <tbody role="rowgroup">
                      {newestFirst.map((v) => {
                        return (
                          <tr key={v.version} data-testid={`version-row-${v.version}`} role="row">
                            <th scope="row" role="rowheader">
                              <Link href={versionHref(name, v.version)}>Version {v.version}</Link>
                            </th>
                            <td role="cell" data-label="Family">{v.source === 'uploaded' ? 'uploaded ONNX' : v.family}</td>
                            <td role="cell" data-label="Task">{v.task}</td>
                            <td role="cell" data-label="Stage">
                              <StageBadge stage={v.stage} />
                            </td>
                            <td role="cell" data-label="Created">{fmtDate(v.created)}</td>
                            <td role="cell" class="num" data-label="Cross-validated">
                              {v.source === 'uploaded' ? (
                                <span class="muted">not evaluated</span>
                              ) : v.score ? (
                                <>
                                  {metricLabel(v.score.metric, { task: v.task })} {meanSd(v.score)}
                                </>
                              ) : (
                                <span class="muted">–</span>
                              )}
                            </td>
                            {session.can('train') ? (
                              <td role="cell" class="span-all">
                                <StageControl name={name} version={v.version} stage={v.stage} production={production} onChanged={res.reload} compact />
                              </td>
                            ) : null}
                          </tr>
                        );
                      })}
                    </tbody>
                  </table>
                </TableWrap>
                <p class="hint">Cross-validated: the main metric's mean ± SD over the folds. Moving a version to production archives the version that was there.</p>
              </Card>
              {d.versions.length >= 2 ? <ComparePicker name={name} versions={newestFirst} /> : null}
            </>
          );
        }}
      </Async>
    </MPage>
  );
}

function VersionSelect(props: { label: string; versions: VersionSummary[]; value: number | null; onChange: (v: number) => void; hint?: string }) {
  return (
    <Field label={props.label} hint={props.hint}>
      {(id, describedBy) => (
        <select id={id} aria-describedby={describedBy} value={props.value ?? ''} onChange={(e) => props.onChange(Number((e.currentTarget as HTMLSelectElement).value))}>
          {props.value === null ? <option value="">Choose a version</option> : null}
          {props.versions.map((v) => (
            <option key={v.version} value={v.version}>
              Version {v.version} · {v.source === 'uploaded' ? 'uploaded' : v.family} · {STAGE_TEXT[v.stage]}
            </option>
          ))}
        </select>
      )}
    </Field>
  );
}

function ComparePicker({ name, versions }: { name: string; versions: VersionSummary[] }) {
  const [a, setA] = useState(versions[1]!.version);
  const [b, setB] = useState(versions[0]!.version);
  return (
    <Card title="Compare two versions">
      <form
        class="compare-form"
        onSubmit={(e) => {
          e.preventDefault();
          navigate(compareHref(name, a, b));
        }}
      >
        <VersionSelect label="Version A (baseline)" versions={versions} value={a} onChange={setA} />
        <VersionSelect label="Version B" versions={versions} value={b} onChange={setB} />
        <div class="compare-go">
          <button type="submit" class="btn btn-primary" disabled={a === b}>
            Compare
          </button>
          {a === b ? <p class="hint">Pick two different versions.</p> : null}
        </div>
      </form>
    </Card>
  );
}

// ─── One version ─────────────────────────────────────────────────────────────────────────────────

function contextOf(v: TrainedVersion): MetricContext {
  const classes = v.target?.classes;
  const conf = v.evaluation?.confusion;
  const total = conf ? conf.reduce((a, r) => a + r.reduce((x, y) => x + y, 0), 0) : 0;
  return {
    task: v.task,
    ...(v.task === 'binary' && classes ? { positive: classes[1]!, negative: classes[0]! } : {}),
    ...(conf && total > 0 ? { classShares: conf.map((r) => r.reduce((x, y) => x + y, 0) / total) } : {}),
    threshold: v.evaluation?.threshold ?? null,
    target: v.target?.column,
    values: Object.fromEntries(Object.entries(v.metrics?.cv ?? {}).map(([k, m]) => [k, m.mean])),
  };
}

/** A version: its evidence, its stage, and where to go next (predict, compare). */
export function VersionPage({ name, version }: { name: string; version: string }) {
  useTitle(`${name} · version ${version}`);
  const session = useSession();
  const res = useApi<VersionDetail>(path('/v1/models', name, 'versions', version));
  // The model's versions: which one is in production (a stage change says which it archives), and whether there is another to compare with.
  const model = useApi<ModelDetail>(path('/v1/models', name));
  const production = model.data?.versions.find((v) => v.stage === 'production')?.version ?? null;
  const others = model.data?.versions.filter((x) => String(x.version) !== version).map((x) => x.version) ?? [];
  const other = others.length ? (others.filter((x) => x < Number(version)).pop() ?? others[0]!) : null;
  const d = res.data;
  return (
    <MPage
      title={
        <>
          {name} · version {version} {d ? <StageBadge stage={d.stage} /> : null}
        </>
      }
      subtitle={
        d ? (
          <>
            <Link href={modelHref(name)}>Model {name}</Link> · {d.source === 'uploaded' ? 'uploaded ONNX model' : d.family} · {d.task}
            {d.source === 'trained' && d.target ? <> · target {d.target.column}</> : null} · created {fmtDate(d.created)}
          </>
        ) : (
          <Link href={modelHref(name)}>Model {name}</Link>
        )
      }
      actions={
        d ? (
          <>
            {session.can('predict') ? (
              <Link href={`${versionHref(name, d.version)}/predict`} class="btn btn-primary">
                Predict with this version
              </Link>
            ) : null}
            {other !== null ? (
              <Link href={compareHref(name, other, d.version)} class="btn">
                Compare with another version
              </Link>
            ) : null}
          </>
        ) : null
      }
    >
      <Async res={res} what="the version">
        {(v) => (
          <>
            {session.can('train') ? (
              <Card title="Stage" class="stage-card">
                <StageControl
                  name={name}
                  version={v.version}
                  stage={v.stage}
                  production={production}
                  onChanged={() => {
                    res.reload();
                    model.reload();
                  }}
                />
              </Card>
            ) : null}
            {v.source === 'uploaded' ? <UploadedView v={v} /> : <TrainedView v={v} />}
          </>
        )}
      </Async>
    </MPage>
  );
}

function UploadedView({ v }: { v: UploadedVersion }) {
  return (
    <>
      <p class="notice">This model was uploaded as an ONNX file: medfit did not train it, so it has no evaluation. Its signature says what it takes and gives.</p>
      <div class="grid2 mgrid">
        <Card title="Signature">
          <TensorTable title="Inputs" tensors={v.inputs} />
          <TensorTable title="Outputs" tensors={v.outputs} />
        </Card>
        <Card title="Features, in input order">
          <ol class={`features ${v.features.length > 10 ? 'features-cols' : ''}`}>
            {v.features.map((f) => (
              <li key={f}>{f}</li>
            ))}
          </ol>
          {v.classes ? (
            <p>
              Classes: {v.classes.map((c, i) => (
                <span key={c}>
                  {i ? ', ' : ''}
                  <code>{c}</code>
                </span>
              ))}
            </p>
          ) : null}
        </Card>
      </div>
      <Card title="Lineage">
        <LineageList v={v} />
      </Card>
    </>
  );
}

function TensorTable({ title, tensors }: { title: string; tensors: { name: string; datatype: string; shape: (number | string)[] }[] }) {
  return (
    <>
      <h3>{title}</h3>
      <TableWrap label={title}>
        <table>
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Type</th>
              <th scope="col">Shape</th>
            </tr>
          </thead>
          <tbody>
            {tensors.map((t) => (
              <tr key={t.name}>
                <td>
                  <code>{t.name}</code>
                </td>
                <td>{t.datatype}</td>
                <td>
                  <code>[{t.shape.map((s) => (s === -1 ? 'batch' : String(s))).join(', ')}]</code>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </TableWrap>
    </>
  );
}

function TrainedView({ v }: { v: TrainedVersion }) {
  const ctx = useMemo(() => contextOf(v), [v]);
  const ev = v.evaluation;
  const warnings = v.metrics?.warnings ?? [];
  return (
    <>
      {warnings.length ? (
        <div class="notice warnings" role="note">
          <strong>Training warnings</strong>
          <ul>
            {warnings.map((w) => (
              <li key={w}>{w}</li>
            ))}
          </ul>
        </div>
      ) : null}
      <Card title="Metrics">
        <MetricTiles v={v} ctx={ctx} />
      </Card>
      {!ev ? <p class="notice">This version has no evaluation report, so there are no curves or matrices to show.</p> : null}
      {ev && v.task === 'binary' ? <BinaryEvidence v={v} /> : null}
      {ev && v.task === 'multiclass' ? <MulticlassEvidence v={v} /> : null}
      {ev && v.task === 'regression' ? <RegressionEvidence v={v} /> : null}
      {ev?.importance?.features.length ? (
        <Card title="Feature importance (permutation, out-of-fold)">
          <ImportanceBars importance={ev.importance} metricLabel={metricLabel(ev.importance.metric, ctx)} />
        </Card>
      ) : null}
      <Leaderboard v={v} ctx={ctx} />
      <div class="grid2 mgrid">
        <Card title="Lineage">
          <LineageList v={v} />
        </Card>
        <Card title={`Hyperparameters (${v.family})`}>
          <ParamsTable params={v.hyperparameters ?? {}} />
        </Card>
      </div>
      <SchemaCard v={v} />
    </>
  );
}

/** Each metric: cross-validated mean ± SD, pooled out-of-fold value with its 95% interval where there is one, and its meaning. */
function MetricTiles({ v, ctx }: { v: TrainedVersion; ctx: MetricContext }) {
  const cv = v.metrics?.cv ?? {};
  const pooled = v.evaluation?.metrics ?? {};
  const nested = v.metrics?.nested;
  const test = v.metrics?.test;
  const keys = metricOrder([...Object.keys(cv), ...Object.keys(pooled)]);
  const conf = v.evaluation?.confusion;
  // Binary rates at the report's threshold have exact counts: Wilson intervals for them.
  const counts: Record<string, [number, number]> = {};
  if (v.task === 'binary' && conf && conf.length === 2) {
    const [[tn, fp], [fn, tp]] = conf as [[number, number], [number, number]];
    counts['recall'] = [tp, tp + fn];
    counts['specificity'] = [tn, tn + fp];
    counts['precision'] = [tp, tp + fp];
    counts['accuracy'] = [tp + tn, tp + tn + fp + fn];
  }
  const ci = v.evaluation?.aurocCi;
  return (
    <>
      <p class="hint">
        Cross-validated: mean ± SD over the folds. Pooled: all out-of-fold predictions scored together, with a 95% interval where one exists (AUROC by DeLong's method; proportions by Wilson's, treating rows as independent).
        {nested ? ` Nested: the whole choice of family repeated inside ${nested.folds} outer folds, the estimate that the choice did not see.` : ''}
      </p>
      <ul class="metric-tiles">
        {keys.map((k) => {
          const m = cv[k];
          const p = pooled[k];
          const value = m?.mean ?? p ?? null;
          let interval: string | null = null;
          if (k === 'auroc' && ci && ci.lower !== null && ci.upper !== null) interval = `${fx(ci.lower)}–${fx(ci.upper)} (DeLong)`;
          else if (counts[k]) {
            const w = wilson(counts[k]![0], counts[k]![1]);
            if (w) interval = `${fx(w.lower)}–${fx(w.upper)} (Wilson)`;
          }
          return (
            <li key={k} class="metric-tile" data-metric={k}>
              <h3>
                {metricLabel(k, ctx)} <span class="goal">{goalText(metricGoal(k))}</span>
              </h3>
              <p class="metric-value">
                {m && m.mean !== null ? (
                  <>
                    {m.std !== null ? (
                      <>
                        {fx(m.mean, decimalsFor(Math.max(Math.abs(m.mean), Math.abs(m.std))))} <span class="metric-sd">± {fx(m.std, decimalsFor(Math.max(Math.abs(m.mean), Math.abs(m.std))))}</span>
                      </>
                    ) : (
                      fx(m.mean)
                    )}
                  </>
                ) : (
                  fx(p)
                )}
              </p>
              <p class="metric-extra">
                {m && m.mean === null ? <>Not defined in every fold. </> : null}
                {p !== undefined ? (
                  <>
                    Pooled {fx(p)}
                    {interval ? <>, 95% CI {interval}</> : null}
                  </>
                ) : null}
                {nested?.metrics[k] ? <> · Nested {meanSd(nested.metrics[k])}</> : null}
                {test && test.metrics[k] !== undefined ? (
                  <>
                    {' '}
                    · Test ({test.rows} rows) {fx(test.metrics[k])}
                  </>
                ) : null}
              </p>
              <p class="metric-meaning">{metricMeaning(k, value, ctx)}</p>
            </li>
          );
        })}
      </ul>
    </>
  );
}

function aurocTitle(v: TrainedVersion): string {
  const ci = v.evaluation?.aurocCi;
  const a = v.evaluation?.metrics['auroc'];
  if (a === null || a === undefined) return '';
  return `AUROC ${fx(a)}${ci && ci.lower !== null && ci.upper !== null ? ` (95% CI ${fx(ci.lower)}–${fx(ci.upper)})` : ''}`;
}

function BinaryEvidence({ v }: { v: TrainedVersion }) {
  const ev = v.evaluation!;
  const classes = v.target?.classes ?? ['0', '1'];
  const positive = classes[1] ?? '1';
  const negative = classes[0] ?? '0';
  const reportThreshold = ev.threshold ?? 0.5;
  const [t, setT] = useState(reportThreshold);
  const conf = ev.confusion ?? [];
  const P = (conf[1]?.[0] ?? 0) + (conf[1]?.[1] ?? 0);
  const N = (conf[0]?.[0] ?? 0) + (conf[0]?.[1] ?? 0);
  const op = useMemo(() => (ev.roc ? operatingPoint(ev.roc, P, N, t) : null), [ev.roc, P, N, t]);
  const curves = useMemo<RocSeries[]>(() => (ev.roc ? [{ label: `Version ${v.version}`, roc: ev.roc }] : []), [ev.roc, v.version]);
  const prMarker = ev.pr ? prIndex(ev.pr, t) : null;
  const seq = v.sequence ? ' (windows)' : '';
  return (
    <>
      <div class="grid2 mgrid">
        {ev.roc ? (
          <Card title={`ROC curve · ${aurocTitle(v)}`}>
            <RocChart curves={curves} marker={op?.index ?? null} label={`ROC curve of version ${v.version}: ${aurocTitle(v)}. The chosen threshold's point is marked.`} />
            <p class="hint">Each point is a threshold: hover to read its sensitivity, false positive rate and threshold. The dashed diagonal is chance; the orange dot is the threshold chosen below.</p>
          </Card>
        ) : null}
        {ev.pr ? (
          <Card title={`Precision-recall curve · AUPRC ${fx(ev.metrics['auprc'])}`}>
            <PrChart pr={ev.pr} prevalence={P + N > 0 ? P / (P + N) : null} marker={prMarker} label={`Precision-recall curve of version ${v.version}, average precision ${fx(ev.metrics['auprc'])}.`} />
            <p class="hint">Precision (PPV) against recall (sensitivity) as the threshold moves; the dashed line is what ranking at random would give: the share of "{positive}".</p>
          </Card>
        ) : null}
      </div>
      <div class="grid2 mgrid">
        {ev.roc && ev.confusion ? (
          <Card title={`Confusion matrix at a threshold${seq}`} id="threshold">
            <ThresholdPanel roc={ev.roc} confusion={ev.confusion} reportThreshold={reportThreshold} positive={positive} negative={negative} t={t} onChange={setT} />
          </Card>
        ) : null}
        {ev.reliability?.length || ev.calibration ? <CalibrationCard v={v} /> : null}
      </div>
    </>
  );
}

const METHOD_NAME: Record<CalibrationMethod, string> = { none: 'no calibrator', platt: 'Platt scaling', isotonic: 'isotonic regression' };
const METHOD_SHORT: Record<CalibrationMethod, string> = { none: 'uncalibrated', platt: 'Platt', isotonic: 'isotonic' };
const METHOD_HOW: Record<CalibrationMethod, string> = { none: '', platt: ' (a sigmoid refitted to the model\'s log-odds)', isotonic: ' (a monotone step function of the probability)' };
const CALIBRATION_ROWS = ['calibration_slope', 'calibration_intercept', 'brier', 'log_loss'] as const;

/**
 * Calibration: how the probabilities were recalibrated (and, under `auto`, why that method), the
 * pooled measures before and after, and the reliability plot with the bins of the model as served.
 * A version trained before calibration existed has only its reliability bins: shown as they were.
 */
function CalibrationCard({ v }: { v: TrainedVersion }) {
  const ev = v.evaluation!;
  const cal = ev.calibration;
  const bins = ev.reliability ?? [];
  const slope = ev.metrics['calibration_slope'];
  const intercept = ev.metrics['calibration_intercept'];
  const calibrated = cal !== undefined && cal.method !== 'none';
  const before = calibrated ? cal.reliability?.before : undefined;
  const method = cal ? METHOD_NAME[cal.method] : '';
  const label = before
    ? `Reliability plot of version ${v.version}: observed share against mean predicted probability, after ${method} in ${bins.length} bins (calibration slope ${fx(slope)}, intercept ${fx(intercept)}) and before calibration in ${before.length} bins (slope ${fx(cal!.before.calibration_slope)}, intercept ${fx(cal!.before.calibration_intercept)}).`
    : `Reliability plot of version ${v.version}: observed share against mean predicted probability in ${bins.length} bins; calibration slope ${fx(slope)}, intercept ${fx(intercept)}.`;
  return (
    <Card title={bins.length ? 'Calibration (reliability)' : 'Calibration'}>
      {cal ? <CalibrationSummaryView v={v} cal={cal} /> : null}
      {bins.length ? (
        <>
          <ReliabilityChart bins={bins} {...(before ? { before, afterLabel: `After (${METHOD_SHORT[cal!.method]})` } : {})} label={label} />
          <p class="hint">
            Rows grouped into tenths of the predicted probability: a well-calibrated model's points lie on the dashed diagonal. Points above it: the outcome is more common than predicted; below: rarer.
            {before ? ` The grey curve is the model before calibration, the blue one after ${method}, as it serves.` : ''} Pooled calibration slope {fx(slope)}, intercept {fx(intercept)}.
          </p>
          <details class="more" open>
            <summary>{calibrated ? `The bins after ${method} as a table` : 'The bins as a table'}</summary>
            <TableWrap label="Reliability bins">
              <table>
                <thead>
                  <tr>
                    <th scope="col">Predicted in</th>
                    <th scope="col" class="num">Rows</th>
                    <th scope="col" class="num">Mean predicted</th>
                    <th scope="col" class="num">Observed</th>
                  </tr>
                </thead>
                <tbody>
                  {bins.map((b) => (
                    <tr key={b.lower}>
                      <td>
                        {fmt(b.lower, 1)}–{fmt(b.upper, 1)}
                      </td>
                      <td class="num">{b.count}</td>
                      <td class="num">{fx(b.meanPredicted)}</td>
                      <td class="num">{fx(b.observed)}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </TableWrap>
          </details>
        </>
      ) : null}
    </Card>
  );
}

/** The method and why, then slope, intercept, Brier score and log loss before and after. */
function CalibrationSummaryView({ v, cal }: { v: TrainedVersion; cal: Calibration }) {
  const ctx = useMemo(() => contextOf(v), [v]);
  const calibrated = cal.method !== 'none';
  const others = cal.candidates.filter((c) => c.method !== 'none');
  const none = cal.candidates.find((c) => c.method === 'none');
  const failed = others.filter((c) => c.error !== undefined);
  const lossText = (c: Calibration['candidates'][number]) => (c.log_loss !== undefined ? fx(c.log_loss) : 'could not be fitted');
  const cost = calibrated && cal.before.log_loss !== null && cal.after.log_loss !== null && cal.after.log_loss > cal.before.log_loss;
  const multi = v.task === 'multiclass' ? ' Slope and intercept: the mean over the classes, each against the rest.' : '';
  return (
    <>
      <p class="calibration-method" data-testid="calibration-method">
        {calibrated ? (
          <>
            Probabilities recalibrated by <strong>{METHOD_NAME[cal.method]}</strong>
            {METHOD_HOW[cal.method]}
            {cal.asked === 'auto' ? (
              <>
                , chosen by cross-fitted log loss (lower is better): {others.map((c, i) => `${i ? ', ' : ''}${METHOD_SHORT[c.method]} ${lossText(c)}`).join('')}
                {none?.log_loss !== undefined ? `; uncalibrated ${fx(none.log_loss)}, scored for comparison (auto always keeps a calibrator that can be fitted)` : ''}.
              </>
            ) : (
              <>, as asked.</>
            )}
          </>
        ) : cal.asked === 'none' ? (
          <>Probabilities as the model gives them: calibration was turned off for this version.</>
        ) : (
          <>
            Probabilities as the model gives them: no calibrator could be fitted
            {failed.length ? <> ({failed.map((c) => `${METHOD_SHORT[c.method]}: ${c.error}`).join('; ')})</> : null}.
          </>
        )}
      </p>
      <TableWrap label="Calibration before and after">
        <table class="calibration-table">
          <thead>
            <tr>
              <th scope="col">Out-of-fold</th>
              <th scope="col" class="num">{calibrated ? 'Before (uncalibrated)' : 'Uncalibrated'}</th>
              {calibrated ? (
                <th scope="col" class="num">
                  After ({METHOD_SHORT[cal.method]})
                </th>
              ) : null}
            </tr>
          </thead>
          <tbody>
            {CALIBRATION_ROWS.map((k) => (
              <tr key={k} data-calibration={k}>
                <th scope="row">
                  {metricLabel(k, ctx)} <span class="goal">{goalText(metricGoal(k))}</span>
                </th>
                <td class="num">{fx(cal.before[k])}</td>
                {calibrated ? <td class="num">{fx(cal.after[k])}</td> : null}
              </tr>
            ))}
          </tbody>
        </table>
      </TableWrap>
      <p class="hint">
        Pooled over the out-of-fold predictions.{calibrated ? ' After: cross-fitted, each fold calibrated by a calibrator fitted on the other folds, so no row is scored by a calibrator that saw it; the model serves one fitted on all of them.' : ''}
        {multi}
        {cost && cal.asked === 'auto' ? ` Here calibrating raised the log loss (${fx(cal.before.log_loss)} → ${fx(cal.after.log_loss)}): training with calibration "none" keeps the model's own probabilities.` : ''}
      </p>
    </>
  );
}

function MulticlassEvidence({ v }: { v: TrainedVersion }) {
  const ev = v.evaluation!;
  const classes = v.target?.classes ?? [];
  const curves = useMemo<RocSeries[]>(() => (ev.roc ? [{ label: 'Micro-average', roc: ev.roc }] : []), [ev.roc]);
  const what = v.sequence ? `Confusion matrix of ${v.target?.column ?? 'activities'} (windows)` : 'Confusion matrix';
  return (
    <>
      {ev.confusion ? (
        <Card title={what}>
          <HeatTable confusion={ev.confusion} classes={classes} caption={what} unit={v.sequence ? 'Windows' : 'Rows'} />
        </Card>
      ) : null}
      <div class="grid2 mgrid">
        {ev.roc ? (
          <Card title={`ROC curve (micro-average) · ${aurocTitle(v)} (macro)`}>
            <RocChart curves={curves} label={`Micro-averaged ROC curve of version ${v.version}; macro ${aurocTitle(v)}.`} />
            <p class="hint">Every case × class pair as one yes/no question; its area is not the macro AUROC in the title, which averages the classes' own curves.</p>
          </Card>
        ) : null}
        {ev.pr ? (
          <Card title="Precision-recall curve (micro-average)">
            <PrChart pr={ev.pr} prevalence={classes.length ? 1 / classes.length : null} label={`Micro-averaged precision-recall curve of version ${v.version}.`} />
          </Card>
        ) : null}
      </div>
      {ev.calibration ? <CalibrationCard v={v} /> : null}
    </>
  );
}

function RegressionEvidence({ v }: { v: TrainedVersion }) {
  const plots = v.evaluation?.regression ?? [];
  if (!plots.length) return null;
  return (
    <>
      {plots.map((p) => (
        <Card key={p.output} title={plots.length > 1 ? `Output ${p.output}` : `Predictions of ${p.output}`}>
          <div class="grid2 inner">
            <div>
              <h3>Predicted versus actual</h3>
              <HeatGrid plot={p} label={`Predicted versus actual ${p.output}, ${p.bins} by ${p.bins} grid of counts from ${num(p.min)} to ${num(p.max)}, with the y = x diagonal.`} />
            </div>
            <div>
              <h3>Residuals by decile of the prediction</h3>
              {p.residuals.length ? (
                <>
                  <ResidualChart plot={p} label={`Mean residual ± SD of ${p.output} for each decile of the prediction.`} />
                  <p class="hint">Mean residual (predicted − actual) ± 1 SD in each tenth of the predictions. Above 0 the model over-predicts there; a slope across deciles shows it shrinks toward the mean.</p>
                </>
              ) : (
                <Empty>Too few rows for residual groups.</Empty>
              )}
            </div>
          </div>
        </Card>
      ))}
    </>
  );
}

/** Rows shown before the disclosure: a search keeps up to 100. */
const BOARD_TOP = 10;

/**
 * Every candidate cross-validated, best first: each family's defaults, a search's points (tagged
 * "searched"), those successive halving or the budget stopped early (with the folds they were
 * scored on) and an ensemble of the best (its members and weights). The top 10, the rest on request.
 */
function Leaderboard({ v, ctx }: { v: TrainedVersion; ctx: MetricContext }) {
  const board = v.metrics?.leaderboard ?? [];
  const [all, setAll] = useState(false);
  if (!board.length) return null;
  const cols = v.task === 'regression' ? ['r2', 'rmse', 'mae'] : ['auroc', 'auprc', 'brier', 'log_loss'];
  const search = v.evaluation?.search;
  const total = v.metrics?.folds;
  // Rows come best first: the chosen model is the first of its family (an ensemble's is its own row).
  const chosenAt = board.findIndex((e) => e.family === v.family);
  const shown = all ? board : board.slice(0, BOARD_TOP);
  const partial = board.some((e) => e.folds !== undefined);
  return (
    <Card title={search || board.length > BOARD_TOP ? `Candidates tried (${board.length})` : 'Families tried'}>
      {search ? <p data-testid="search-summary">{searchText(search)}</p> : null}
      <TableWrap label="Leaderboard of families">
        <table class="leaderboard">
          <thead>
            <tr>
              <th scope="col">Family</th>
              {cols.map((c) => (
                <th scope="col" class="num" key={c}>
                  {metricLabel(c, ctx)}
                </th>
              ))}
              <th scope="col" class="num">Time</th>
              <th scope="col">Parameters</th>
            </tr>
          </thead>
          <tbody>
            {shown.map((e, i) => {
              const chosen = i === chosenAt;
              const params = e.params ?? (chosen ? v.hyperparameters : undefined);
              return (
                <tr key={i} data-family={e.family}>
                  <th scope="row">
                    {e.family} {chosen ? <Badge kind="ok">chosen</Badge> : null} {e.searched ? <Badge kind="none">searched</Badge> : null}{' '}
                    {e.folds !== undefined ? <Badge kind="none">{total ? `${e.folds}/${total} folds` : `${e.folds} fold${e.folds === 1 ? '' : 's'}`}</Badge> : null}
                  </th>
                  {cols.map((c) => (
                    <td class="num" key={c}>
                      {meanSd(e.metrics[c])}
                    </td>
                  ))}
                  <td class="num">{e.seconds < 1 ? `${Math.round(e.seconds * 1000)} ms` : `${e.seconds.toFixed(1)} s`}</td>
                  <td class="params">{e.family === 'ensemble' && params ? <EnsembleMembers params={params} /> : params ? <ParamsInline params={params} /> : <span class="muted">defaults (not recorded)</span>}</td>
                </tr>
              );
            })}
          </tbody>
        </table>
      </TableWrap>
      {board.length > BOARD_TOP ? (
        <Button onClick={() => setAll(!all)} aria-expanded={all}>
          {all ? `Show the top ${BOARD_TOP}` : `Show all ${board.length} rows`}
        </Button>
      ) : null}
      <p class="hint">
        Cross-validated on the same folds; the {board.some((e) => e.family === 'ensemble') ? 'candidate' : 'family'} with the best {metricLabel(mainMetric(v.task), ctx)} was chosen and refitted on every row.
        {partial ? ' Rows with a fold count were stopped early (successive halving or the budget): their scores come from those folds only, so they are listed after the rows scored on every fold.' : ''}
        {board.some((e) => e.family === 'ensemble') ? ' An ensemble averages its members\' predictions, each times its weight; members are named by family and trial number.' : ''}
      </p>
    </Card>
  );
}

/** "Searched for 14.6 s of a 15 s budget: gbdt 91 tried (10 on every fold), …". */
function searchText(s: SearchSummary): string {
  const families = Object.entries(s.trials)
    .map(([f, t]) => `${f} ${t.started} tried (${t.complete} on every fold)`)
    .join(', ');
  const repeats = s.repeats > 1 ? ` Each complete trial was scored on ${s.repeats} repetitions of the cross-validation.` : '';
  return `Searched for ${fx(s.seconds, 1)} s of a ${fmt(s.budget)} s budget: ${families}.${repeats}`;
}

/** An ensemble's members (`gbdt#3`) with their weights; its raw params when they do not pair up. */
function EnsembleMembers({ params }: { params: Record<string, unknown> }) {
  const members = typeof params['members'] === 'string' ? params['members'].split(',') : [];
  const weights = Array.isArray(params['weights']) ? (params['weights'] as unknown[]) : [];
  if (!members.length || members.length !== weights.length) return <ParamsInline params={params} />;
  return (
    <span class="params-inline">
      {members.map((m, i) => (
        <code key={i}>
          {m.replace('#', ' #')} × {typeof weights[i] === 'number' ? fx(weights[i] as number, 2) : paramText(weights[i])}
        </code>
      ))}
    </span>
  );
}

function paramText(x: unknown): string {
  if (typeof x === 'number') return String(x).length > 10 ? String(Number(x.toPrecision(6))) : String(x);
  if (typeof x === 'string') return x;
  return JSON.stringify(x);
}

function ParamsInline({ params }: { params: Record<string, unknown> }) {
  return (
    <span class="params-inline">
      {Object.entries(params).map(([k, x]) => (
        <code key={k}>
          {k}={paramText(x)}
        </code>
      ))}
    </span>
  );
}

function ParamsTable({ params }: { params: Record<string, unknown> }) {
  const entries = Object.entries(params);
  if (!entries.length) return <Empty>No hyperparameters.</Empty>;
  return (
    <TableWrap label="Hyperparameters">
      <table>
        <tbody>
          {entries.map(([k, x]) => (
            <tr key={k}>
              <th scope="row">
                <code>{k}</code>
              </th>
              <td class="num">{paramText(x)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </TableWrap>
  );
}

function LineageList({ v }: { v: VersionDetail }) {
  const l = v.lineage;
  return (
    <dl class="lineage">
      <dt>Dataset</dt>
      <dd>{l.dataset ? <Link href={`/datasets/${encodeURIComponent(l.dataset)}`}>{l.dataset}</Link> : <span class="muted">none (uploaded model)</span>}</dd>
      <dt>Dataset SHA-256</dt>
      <dd>{l.datasetSha256 ? <code class="hash">{l.datasetSha256}</code> : '–'}</dd>
      <dt>Training job</dt>
      <dd>{l.job ? <Link href={`/jobs/${encodeURIComponent(l.job)}`}>{l.job}</Link> : '–'}</dd>
      <dt>Created</dt>
      <dd>{fmtDate(l.created)}</dd>
      {v.source === 'trained' && v.engines ? (
        <>
          <dt>Engines</dt>
          <dd>
            {Object.entries(v.engines)
              .map(([k, x]) => `${k} ${x}`)
              .join(', ')}
          </dd>
        </>
      ) : null}
    </dl>
  );
}

function SchemaCard({ v }: { v: TrainedVersion }) {
  const cols = v.schema?.columns ?? [];
  const s = v.sequence;
  const [all, setAll] = useState(false);
  const shown = all ? cols : cols.slice(0, 12);
  return (
    <Card title="Input schema">
      {s ? (
        <p>
          A sequence model: samples with {Object.entries(s.columns)
            .map(([k, c]) => `${k} "${c}"`)
            .join(', ')}
          ; channels {s.channels.join(', ')} resampled to {s.rate} Hz, windows of {s.window} steps every {s.stride}.
        </p>
      ) : null}
      {cols.length ? (
        <TableWrap label="Input columns">
          <table>
            <thead>
              <tr>
                <th scope="col">Column</th>
                <th scope="col">Type</th>
                <th scope="col">Role</th>
                <th scope="col">Note</th>
              </tr>
            </thead>
            <tbody>
              {shown.map((c) => (
                <tr key={c.name}>
                  <td>
                    <code>{c.name}</code>
                  </td>
                  <td>{c.type}</td>
                  <td>{c.role === 'ignored' ? <span class="muted">left out</span> : c.role}</td>
                  <td class="muted">{c.reason ?? ''}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </TableWrap>
      ) : (
        <Empty>No schema recorded.</Empty>
      )}
      {cols.length > 12 ? (
        <Button onClick={() => setAll(!all)} aria-expanded={all}>
          {all ? 'Show the first 12 columns' : `Show all ${cols.length} columns`}
        </Button>
      ) : null}
    </Card>
  );
}

// ─── Two versions side by side ───────────────────────────────────────────────────────────────────

/** b − a with a sign, at the decimals of the larger value. */
function diffText(diff: number | null, a: number | null | undefined, b: number | null | undefined): string {
  if (diff === null) return '–';
  const text = fx(Math.abs(diff), decimalsFor(Math.max(Math.abs(a ?? 0), Math.abs(b ?? 0))));
  return Number(text) === 0 ? text : `${diff > 0 ? '+' : '−'}${text}`;
}

const VERDICT_TEXT = { better: 'B better', worse: 'B worse', same: 'similar', unknown: '–' } as const;

/** Two versions side by side: each metric, the difference (b − a) and which is better, in words. */
export function ComparePage({ name }: { name: string }) {
  useTitle(`Compare ${name}`);
  const { query } = useLocation();
  const list = useApi<ModelDetail>(path('/v1/models', name));
  const versions = useMemo(() => (list.data ? [...list.data.versions].sort((x, y) => y.version - x.version) : []), [list.data]);
  const qa = query.get('a');
  const qb = query.get('b');
  const pick = (q: string | null, fallback: number | undefined) => (q !== null && /^[1-9][0-9]{0,8}$/.test(q) ? Number(q) : (fallback ?? null));
  const b = pick(qb, versions[0]?.version);
  const a = pick(qa, versions.find((v) => v.version !== b)?.version);
  const ra = useApi<VersionDetail>(a !== null ? path('/v1/models', name, 'versions', a) : null);
  const rb = useApi<VersionDetail>(b !== null ? path('/v1/models', name, 'versions', b) : null);
  return (
    <MPage title={`Compare versions of ${name}`} subtitle={<Link href={modelHref(name)}>Model {name}</Link>}>
      <Async res={list} what="the versions">
        {() => (
          <>
            <Card>
              <div class="compare-form">
                <VersionSelect label="Version A (baseline)" versions={versions} value={a} onChange={(v) => setQuery('a', String(v))} />
                <VersionSelect label="Version B" versions={versions} value={b} onChange={(v) => setQuery('b', String(v))} />
              </div>
              {a !== null && a === b ? <p class="hint">Both sides show the same version: pick another for one of them.</p> : null}
            </Card>
            <ErrorMessage error={ra.error} />
            <ErrorMessage error={rb.error} />
            {ra.data && rb.data ? <Comparison a={ra.data} b={rb.data} /> : ra.loading || rb.loading ? <p class="muted">Loading the versions…</p> : null}
          </>
        )}
      </Async>
    </MPage>
  );
}

function Comparison({ a, b }: { a: VersionDetail; b: VersionDetail }) {
  if (a.source === 'uploaded' || b.source === 'uploaded') {
    return (
      <>
        <CompareHeader a={a} b={b} />
        <p class="notice">An uploaded ONNX model has no evaluation, so there are no metrics to compare.</p>
      </>
    );
  }
  const ctx = contextOf(b);
  const keys = metricOrder([...Object.keys(a.metrics?.cv ?? {}), ...Object.keys(b.metrics?.cv ?? {})]);
  const sameData = a.lineage.datasetSha256 && a.lineage.datasetSha256 === b.lineage.datasetSha256;
  const bothBinary = a.task === 'binary' && b.task === 'binary' && a.evaluation?.roc && b.evaluation?.roc;
  return (
    <>
      <CompareHeader a={a} b={b} />
      {!sameData ? <p class="notice">The two versions were trained on different data (the dataset SHA-256 differs): their scores are not measured on the same cases.</p> : null}
      {a.task !== b.task ? <p class="notice">The versions solve different tasks ({a.task} and {b.task}); only metrics both have are compared.</p> : null}
      <Card title="Cross-validated metrics">
        <TableWrap label="Metrics of both versions">
          <table class="compare stack-table" role="table">
            <thead role="rowgroup">
              <tr role="row">
                <th scope="col">Metric</th>
                <th scope="col" class="num">A · version {a.version}</th>
                <th scope="col" class="num">B · version {b.version}</th>
                <th scope="col" class="num">Difference (B − A)</th>
                <th scope="col">Which is better</th>
              </tr>
            </thead>
            <tbody role="rowgroup">
              {keys.map((k) => {
                const ma = a.metrics?.cv?.[k];
                const mb = b.metrics?.cv?.[k];
                const noise = Math.max(ma?.std ?? 0, mb?.std ?? 0);
                const vd = verdict(k, ma?.mean, mb?.mean, noise);
                const diff = ma?.mean !== null && ma?.mean !== undefined && mb?.mean !== null && mb?.mean !== undefined ? mb.mean - ma.mean : null;
                return (
                  <tr key={k} data-metric={k} role="row">
                    <th scope="row" role="rowheader">
                      {metricLabel(k, ctx)} <span class="goal">{goalText(metricGoal(k))}</span>
                    </th>
                    <td role="cell" class="num" data-label={`A · version ${a.version}`}>
                      {meanSd(ma)}
                    </td>
                    <td role="cell" class="num" data-label={`B · version ${b.version}`}>
                      {meanSd(mb)}
                    </td>
                    <td role="cell" class="num" data-label="B − A">
                      {diffText(diff, ma?.mean, mb?.mean)}
                    </td>
                    <td role="cell" class={`verdict verdict-${vd}`} data-label="Which is better">
                      {vd === 'same' ? (
                        <>similar <span class="muted">(within the folds' SD)</span></>
                      ) : (
                        VERDICT_TEXT[vd]
                      )}
                    </td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        </TableWrap>
        <p class="hint">Mean ± SD over each version's folds. A difference smaller than the larger of the two SDs is called similar: cross-validation cannot tell such versions apart. For calibration slope the best is 1, for intercept and bias 0.</p>
      </Card>
      {bothBinary ? <CompareRoc a={a} b={b} /> : null}
    </>
  );
}

function CompareHeader({ a, b }: { a: VersionDetail; b: VersionDetail }) {
  const row = (label: string, f: (v: VersionDetail) => ComponentChildren) => (
    <tr>
      <th scope="row">{label}</th>
      <td>{f(a)}</td>
      <td>{f(b)}</td>
    </tr>
  );
  return (
    <Card title="The two versions">
      <TableWrap label="The two versions">
        <table>
          <thead>
            <tr>
              <td />
              <th scope="col">
                A · <Link href={versionHref(a.name, a.version)}>version {a.version}</Link>
              </th>
              <th scope="col">
                B · <Link href={versionHref(b.name, b.version)}>version {b.version}</Link>
              </th>
            </tr>
          </thead>
          <tbody>
            {row('Family', (v) => (v.source === 'uploaded' ? 'uploaded ONNX' : v.family))}
            {row('Task', (v) => v.task)}
            {row('Stage', (v) => <StageBadge stage={v.stage} />)}
            {row('Created', (v) => fmtDate(v.created))}
            {row('Dataset', (v) => (v.lineage.dataset ? <Link href={`/datasets/${encodeURIComponent(v.lineage.dataset)}`}>{v.lineage.dataset.slice(0, 8)}…</Link> : '–'))}
          </tbody>
        </table>
      </TableWrap>
    </Card>
  );
}

function CompareRoc({ a, b }: { a: TrainedVersion; b: TrainedVersion }) {
  const curves = useMemo<RocSeries[]>(
    () => [
      { label: `A · version ${a.version}`, roc: a.evaluation!.roc! },
      { label: `B · version ${b.version}`, roc: b.evaluation!.roc! },
    ],
    [a, b],
  );
  return (
    <Card title="ROC curves" class="compare-roc">
      <ul class="plain roc-legend">
        <li>
          <span class="swatch swatch-0" aria-hidden="true" /> A · version {a.version}: {aurocTitle(a)}
        </li>
        <li>
          <span class="swatch swatch-1" aria-hidden="true" /> B · version {b.version}: {aurocTitle(b)}
        </li>
      </ul>
      <RocChart curves={curves} label={`ROC curves of version ${a.version} (${aurocTitle(a)}) and version ${b.version} (${aurocTitle(b)}).`} height={320} />
      <p class="hint">Out-of-fold curves of both versions; hover to read each one's sensitivity and threshold at a false positive rate. Overlapping intervals do not prove the versions equal, nor separate ones that the difference matters clinically.</p>
    </Card>
  );
}
