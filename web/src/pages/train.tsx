/**
 * `/train`: a new training job (`POST /v1/jobs`). The dataset and its columns come from
 * `/v1/datasets`, the families and their hyperparameters (type, default, range, help) from
 * `/v1/families`; values are checked here as the server checks them, and the server's field
 * errors (`/params/mlp/epochs`…) are shown at the fields they name. `?dataset=<id>` preselects.
 */
import type { ComponentChildren } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import { api, ApiError, path } from '../api';
import { Card, ErrorMessage, Field, Page } from '../components/ui';
import { announce, useApi, useTitle } from '../hooks';
import { Link, navigate, setQuery, useLocation } from '../router';
import { familyName } from './jobs';
import './train.css';

type Task = 'binary' | 'multiclass' | 'regression';

interface DatasetSummary {
  id: string;
  name: string;
  rows: number;
  format?: string;
  columns: { name: string; type: string; missing: number }[];
}
interface ColumnProfile {
  name: string;
  type: string;
  role?: string;
  reason?: string;
  identifier?: string;
  distinct?: number;
}
interface DatasetDetail extends DatasetSummary {
  profile: { columns?: ColumnProfile[]; target?: { column: string } } | null;
}
interface ParamInfo {
  name: string;
  type: 'int' | 'float' | 'bool' | 'enum' | 'intList';
  default: number | string | boolean | number[];
  help: string;
  min?: number;
  max?: number;
  exclusiveMin?: boolean;
  choices?: string[];
  maxLength?: number;
  dependsOnRows: boolean;
}
interface FamilyInfo {
  name: string;
  kind: 'table' | 'sequence';
  tasks: Task[];
  multiOutput: boolean;
  params: ParamInfo[];
}

/** The usual column names of a long-format sensor table (src/sequence/options.ts). */
const SEQ_DEFAULTS = {
  subject: ['subject', 'subject_id', 'user', 'participant'],
  time: ['t', 'time', 'timestamp'],
  session: ['session', 'session_id', 'recording'],
} as const;
const defaultColumn = (cols: string[], what: keyof typeof SEQ_DEFAULTS) => SEQ_DEFAULTS[what].find((n) => cols.includes(n));

const MODEL_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
const LENGTH = /^(?:[1-9][0-9]{0,5}|[0-9]+(?:\.[0-9]+)?(?:s|ms))$/;
const FILTER = /^(?:lowpass:[0-9]+(?:\.[0-9]+)?|median:[1-9][0-9]*)$/;
const NUMERIC_TYPES = new Set(['numeric', 'integer']);

/** A model name from the dataset and target: letters, digits, _ . - (the server's pattern). */
function suggestName(dataset: string, target: string): string {
  const raw = `${dataset.replace(/\.(csv|json|ndjson|jsonl|fit)$/i, '')}${target ? `-${target}` : ''}`;
  return raw.replace(/[^A-Za-z0-9_.-]+/g, '-').replace(/^[^A-Za-z0-9]+/, '').slice(0, 64) || 'model';
}

/** What `task: auto` will most likely decide for this target (src/data/pipeline.ts encodeTarget). */
function guessTask(col: ColumnProfile | undefined, rows: number): { task: Task; why: string } | null {
  if (!col || col.distinct === undefined) return null;
  const d = col.distinct;
  if (d < 2) return null;
  if (d === 2) return { task: 'binary', why: `"${col.name}" has 2 distinct values` };
  if (!NUMERIC_TYPES.has(col.type)) return { task: 'multiclass', why: `"${col.name}" holds ${d} labels` };
  if (col.type === 'integer' && d <= 10 && rows >= 20 * d) return { task: 'multiclass', why: `"${col.name}" holds ${d} whole-number classes` };
  return { task: 'regression', why: `"${col.name}" holds numbers` };
}

/** The range of a number parameter in words. */
function rangeText(p: ParamInfo): string {
  if (p.type === 'int' || p.type === 'float') return `${p.exclusiveMin ? 'more than' : 'from'} ${p.min} to ${p.max}`;
  if (p.type === 'intList') return `up to ${p.maxLength} whole numbers from ${p.min} to ${p.max}, comma-separated`;
  if (p.type === 'enum') return p.choices!.join(' or ');
  return 'true or false';
}
function defaultText(p: ParamInfo): string {
  return Array.isArray(p.default) ? p.default.join(',') : String(p.default);
}

/** The problem with one parameter's text, or undefined; the value to send otherwise. */
function checkParam(p: ParamInfo, text: string): { error?: string; value?: unknown } {
  const t = text.trim();
  if (t === '') return {};
  switch (p.type) {
    case 'int':
    case 'float': {
      const n = Number(t);
      if (!Number.isFinite(n)) return { error: 'Enter a number.' };
      if (p.type === 'int' && !Number.isInteger(n)) return { error: 'Enter a whole number.' };
      if ((p.exclusiveMin ? n <= p.min! : n < p.min!) || n > p.max!) return { error: `Must be ${rangeText(p)}.` };
      return { value: n };
    }
    case 'intList': {
      const items = t.split(',').map((v) => (v.trim() === '' ? NaN : Number(v)));
      if (items.length > p.maxLength! || items.some((v) => !Number.isInteger(v) || v < p.min! || v > p.max!)) return { error: `Enter ${rangeText(p)}.` };
      return { value: items };
    }
    case 'enum':
      return p.choices!.includes(t) ? { value: t } : { error: `Choose ${rangeText(p)}.` };
    case 'bool':
      return t === 'true' || t === 'false' ? { value: t === 'true' } : { error: 'Choose true or false.' };
  }
}

/** The server's pointer as the form's field key: list items point at their list. */
function fieldKey(pointer: string): string {
  return pointer.replace(/^\/body/, '').replace(/^\/(ignore|target|sequence\/channels)\/\d+$/, '/$1');
}

type SeqKey = 'subject' | 'session' | 'time' | 'timeUnit' | 'rate' | 'window' | 'stride' | 'label' | 'filter' | 'maxGap' | 'balance' | 'sensorDropout';

interface Form {
  dataset: string;
  target: string;
  task: 'auto' | Task;
  model: string;
  name: string;
  nameEdited: boolean;
  cv: string;
  seed: string;
  group: string;
  nested: boolean;
  ignore: string[];
  params: Record<string, Record<string, string>>;
  /** null: follow the dataset (a sequence job for a sensor dataset). */
  sequence: boolean | null;
  seq: Partial<Record<SeqKey, string>>;
  channels: string[];
}

const EMPTY: Omit<Form, 'dataset'> = { target: '', task: 'auto', model: 'auto', name: '', nameEdited: false, cv: '', seed: '', group: '', nested: false, ignore: [], params: {}, sequence: null, seq: {}, channels: [] };

export function TrainPage() {
  useTitle('New training job');
  const { query } = useLocation();
  const [form, setForm] = useState<Form>(() => ({ ...EMPTY, dataset: query.get('dataset') ?? '' }));
  const [touched, setTouched] = useState<Set<string>>(new Set());
  const [tried, setTried] = useState(false);
  const [serverErrors, setServerErrors] = useState<Record<string, string>>({});
  const [submitError, setSubmitError] = useState<ApiError | null>(null);
  const [busy, setBusy] = useState(false);
  const formRef = useRef<HTMLFormElement>(null);

  const datasets = useApi<{ datasets: DatasetSummary[] }>('/v1/datasets');
  const detail = useApi<DatasetDetail>(form.dataset ? path('/v1/datasets', form.dataset) : null);
  const summary = datasets.data?.datasets.find((d) => d.id === form.dataset);
  const ds = detail.data;
  const columns = ds?.columns.map((c) => c.name) ?? [];
  const profileCols = new Map((ds?.profile?.columns ?? []).map((c) => [c.name, c]));
  const colType = (c: string) => profileCols.get(c)?.type ?? ds?.columns.find((x) => x.name === c)?.type ?? '';
  const sensor = !!ds && defaultColumn(columns, 'subject') !== undefined && defaultColumn(columns, 'time') !== undefined;
  const sequence = form.sequence ?? sensor;
  const rows = Math.max(1, ds?.rows ?? summary?.rows ?? 1000);

  const guess = form.target ? guessTask(profileCols.get(form.target) ?? (ds ? { name: form.target, type: colType(form.target) } : undefined), rows) : null;
  const task: Task | null = form.task !== 'auto' ? form.task : (guess?.task ?? null);
  const families = useApi<{ families: FamilyInfo[] }>(`/v1/families?rows=${Math.min(rows, 9_999_999_999)}${task ? `&task=${task}` : ''}`);
  const kind = sequence ? 'sequence' : 'table';
  const offered = (families.data?.families ?? []).filter((f) => f.kind === kind && (!task || f.tasks.includes(task)));
  const chosen = offered.find((f) => f.name === form.model);

  // Preselect the dataset's own target when its profile names one.
  useEffect(() => {
    if (!ds || form.target) return;
    const t = ds.profile?.target?.column;
    if (t && columns.includes(t)) update({ target: t });
  }, [ds?.id]);
  // A family that no longer fits (the task or the kind changed) goes back to auto.
  useEffect(() => {
    if (families.data && form.model !== 'auto' && !chosen) update({ model: 'auto' });
  }, [families.data, kind, task]);
  // The name follows the dataset and target until the user writes one.
  useEffect(() => {
    if (!form.nameEdited && summary) setForm((f) => ({ ...f, name: suggestName(summary.name, f.target) }));
  }, [summary?.name, form.target, form.nameEdited]);

  function update(patch: Partial<Form>, keys: string[] = []) {
    setForm((f) => ({ ...f, ...patch }));
    if (keys.length) {
      setServerErrors((e) => {
        const n = { ...e };
        for (const k of keys) delete n[k];
        return n;
      });
    }
  }

  // Candidate families whose parameters the job may carry: the chosen one, or every one auto may try.
  const paramFamilies = form.model === 'auto' ? offered : chosen ? [chosen] : [];

  /** The problems the server would find in what needs no data, keyed like its pointers. */
  const clientErrors = ((): Record<string, string> => {
    const e: Record<string, string> = {};
    if (!form.dataset) e['/dataset'] = 'Choose a dataset.';
    else if (datasets.data && !summary) e['/dataset'] = 'This dataset does not exist (any more). Choose another.';
    if (!form.target) e['/target'] = 'Choose the column to predict.';
    if (!form.name.trim()) e['/name'] = 'Name the model.';
    else if (!MODEL_NAME.test(form.name)) e['/name'] = 'Use 1 to 64 letters, digits, _ . or -, starting with a letter or digit.';
    if (form.cv.trim() !== '') {
      const n = Number(form.cv);
      if (!Number.isInteger(n) || n < 2 || n > 20) e['/cv'] = 'Enter a whole number from 2 to 20.';
    }
    if (form.seed.trim() !== '') {
      const n = Number(form.seed);
      if (!Number.isInteger(n) || n < 0 || n > 4294967295) e['/seed'] = 'Enter a whole number from 0 to 4294967295.';
    }
    if (!sequence && form.group && form.group === form.target) e['/group'] = 'The group column cannot be the target.';
    for (const f of paramFamilies) {
      for (const p of f.params) {
        const r = checkParam(p, form.params[f.name]?.[p.name] ?? '');
        if (r.error) e[`/params/${f.name}/${p.name}`] = r.error;
      }
    }
    if (sequence) {
      const s = form.seq;
      const num = (k: SeqKey, lo: number, hi: number, exclusive: boolean, msg: string) => {
        const t = (s[k] ?? '').trim();
        if (t === '') return;
        const n = Number(t);
        if (!Number.isFinite(n) || (exclusive ? n <= lo : n < lo) || n > hi) e[`/sequence/${k}`] = msg;
      };
      num('rate', 0, 10000, true, 'Enter a rate above 0 and at most 10000 Hz.');
      num('maxGap', 0, 86400, true, 'Enter seconds above 0, at most 86400.');
      num('sensorDropout', 0, 0.9, false, 'Enter a share from 0 to 0.9.');
      for (const k of ['window', 'stride'] as const) {
        const t = (s[k] ?? '').trim();
        if (t !== '' && !LENGTH.test(t)) e[`/sequence/${k}`] = 'Enter a number of samples (128) or a duration (2.56s, 500ms).';
      }
      const f = (s.filter ?? '').trim();
      if (f !== '' && !FILTER.test(f)) e['/sequence/filter'] = 'Write lowpass:<hz> (lowpass:5) or median:<samples> (median:5).';
      const picked = (['subject', 'time', 'session'] as const).map((k) => [k, s[k] || defaultColumn(columns, k)] as const);
      for (const [k, c] of picked) {
        if (c && c === form.target) e[`/sequence/${k}`] = `"${c}" is the target column.`;
        else if (!c && k !== 'session' && ds) e[`/sequence/${k}`] = `No usual ${k} column (${SEQ_DEFAULTS[k].join(', ')}): choose one.`;
      }
    }
    return e;
  })();

  const errorOf = (key: string): string | undefined => serverErrors[key] ?? (tried || touched.has(key) ? clientErrors[key] : undefined);
  const touch = (key: string) => () => setTouched((t) => (t.has(key) ? t : new Set(t).add(key)));

  function body(): Record<string, unknown> {
    const b: Record<string, unknown> = { dataset: form.dataset, target: form.target, name: form.name.trim() };
    if (form.task !== 'auto') b['task'] = form.task;
    if (form.model !== 'auto') b['model'] = form.model;
    const params: Record<string, Record<string, unknown>> = {};
    for (const f of paramFamilies) {
      for (const p of f.params) {
        const r = checkParam(p, form.params[f.name]?.[p.name] ?? '');
        if (r.value !== undefined) (params[f.name] ??= {})[p.name] = r.value;
      }
    }
    if (Object.keys(params).length) b['params'] = params;
    if (form.cv.trim()) b['cv'] = Number(form.cv);
    if (form.seed.trim()) b['seed'] = Number(form.seed);
    const ignore = form.ignore.filter((c) => c !== form.target && c !== form.group);
    if (ignore.length) b['ignore'] = ignore;
    if (sequence) {
      const s: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(form.seq)) {
        const t = (v ?? '').trim();
        if (t === '') continue;
        s[k] = ['rate', 'maxGap', 'sensorDropout'].includes(k) ? Number(t) : (k === 'window' || k === 'stride') && /^[0-9]+$/.test(t) ? Number(t) : t;
      }
      if (form.channels.length) s['channels'] = form.channels;
      b['sequence'] = s;
    } else {
      if (form.group) b['group'] = form.group;
      if (form.nested) b['nested'] = true;
    }
    return b;
  }

  function focusFirst(keys: string[]) {
    requestAnimationFrame(() => {
      // The first invalid field in the page's order, as a person reads the form.
      const wanted = new Set(keys);
      for (const el of Array.from(formRef.current?.querySelectorAll<HTMLElement>('[data-pointer]') ?? [])) {
        if (wanted.has(el.dataset['pointer']!)) {
          // A parameter inside a closed family section: open it first.
          const details = el.closest('details');
          if (details && !details.open) details.open = true;
          el.focus();
          return;
        }
      }
      formRef.current?.querySelector<HTMLElement>('.form-errors')?.focus();
    });
  }

  async function submit(e: Event) {
    e.preventDefault();
    setTried(true);
    setSubmitError(null);
    const keys = Object.keys(clientErrors);
    if (keys.length) {
      announce(`The form has ${keys.length} problem${keys.length === 1 ? '' : 's'}; the first is selected.`);
      focusFirst(keys);
      return;
    }
    setBusy(true);
    try {
      const job = await api<{ id: string; status: string }>('/v1/jobs', { body: body() });
      announce(`Training job ${form.name} started.`);
      navigate(path('/jobs', job.id));
    } catch (err) {
      const ae = err instanceof ApiError ? err : new ApiError((err as Error).message, 0);
      const mapped: Record<string, string> = {};
      for (const f of ae.fields) {
        const k = fieldKey(f.pointer);
        mapped[k] = mapped[k] ? `${mapped[k]} ${f.message}` : f.message;
      }
      setServerErrors(mapped);
      setSubmitError(ae);
      announce(`The job was refused: ${ae.message}`);
      focusFirst(Object.keys(mapped));
    } finally {
      setBusy(false);
    }
  }

  const errorCount = tried ? Object.keys({ ...clientErrors, ...serverErrors }).length : 0;
  const chooseDataset = (id: string) => {
    // Column choices belong to the old dataset; the model settings carry over.
    setForm((f) => ({ ...f, dataset: id, target: '', group: '', ignore: [], sequence: null, seq: {}, channels: [] }));
    setServerErrors({});
    setQuery('dataset', id || null);
  };

  if (datasets.data && datasets.data.datasets.length === 0) {
    return (
      <Page title="New training job">
        <Card>
          <p>
            There is no dataset to train on yet. <Link href="/datasets">Upload one</Link> first.
          </p>
        </Card>
      </Page>
    );
  }

  return (
    <Page title="New training job" subtitle="Each succeeded job registers a new version of the model it names. Empty fields take the defaults shown.">
      {datasets.error ? <ErrorMessage error={datasets.error} /> : null}
      <form ref={formRef} noValidate onSubmit={submit} class="train-form" aria-describedby={submitError ? 'train-error' : undefined}>
        {submitError || errorCount ? (
          <div class="form-errors" tabIndex={-1} id="train-error">
            {submitError ? <ErrorMessage error={submitError} /> : <p class="error" role="alert">Please correct the {errorCount === 1 ? 'field' : `${errorCount} fields`} marked below.</p>}
          </div>
        ) : null}

        <Card title="Data">
          <div class="form-grid">
            <Field label="Dataset" error={errorOf('/dataset')} hint={summary ? `${summary.rows.toLocaleString()} rows · ${summary.columns.length} columns${sensor ? ' · sensor streams' : ''}` : undefined}>
              {(id, d) => (
                <select id={id} aria-describedby={d} data-pointer="/dataset" value={form.dataset} aria-invalid={errorOf('/dataset') ? true : undefined} onChange={(e) => chooseDataset((e.target as HTMLSelectElement).value)} onBlur={touch('/dataset')}>
                  <option value="">{datasets.data ? 'Choose a dataset…' : 'Loading datasets…'}</option>
                  {datasets.data?.datasets.map((x) => (
                    <option key={x.id} value={x.id}>
                      {x.name} ({x.rows.toLocaleString()} rows)
                    </option>
                  ))}
                </select>
              )}
            </Field>
            <Field label="Target (the column to predict)" error={errorOf('/target')} hint={form.target && colType(form.target) ? `${colType(form.target)} column` : detail.loading ? 'Loading the columns…' : undefined}>
              {(id, d) => (
                <select
                  id={id}
                  aria-describedby={d}
                  data-pointer="/target"
                  value={form.target}
                  disabled={!ds}
                  aria-invalid={errorOf('/target') ? true : undefined}
                  onChange={(e) => {
                    const t = (e.target as HTMLSelectElement).value;
                    update({ target: t, ignore: form.ignore.filter((c) => c !== t), group: form.group === t ? '' : form.group }, ['/target']);
                  }}
                  onBlur={touch('/target')}
                >
                  <option value="">{ds ? 'Choose the target…' : 'Choose a dataset first'}</option>
                  {columns.map((c) => (
                    <option key={c} value={c}>
                      {c} ({colType(c) || 'column'})
                    </option>
                  ))}
                </select>
              )}
            </Field>
            <Field
              label="Task"
              error={errorOf('/task')}
              hint={form.task === 'auto' ? (guess ? `Auto: most likely ${guess.task} (${guess.why}).` : 'Auto: decided by the target (2 values: binary; labels: multiclass; numbers: regression).') : undefined}
            >
              {(id, d) => (
                <select id={id} aria-describedby={d} data-pointer="/task" value={form.task} onChange={(e) => update({ task: (e.target as HTMLSelectElement).value as Form['task'] }, ['/task'])}>
                  <option value="auto">auto (from the target)</option>
                  <option value="binary">binary classification</option>
                  <option value="multiclass">multiclass classification</option>
                  <option value="regression">regression</option>
                </select>
              )}
            </Field>
            <Field label="Model name" error={errorOf('/name')} hint="Letters, digits, _ . -; a job with an existing name adds a version to that model.">
              {(id, d) => (
                <input
                  id={id}
                  type="text"
                  aria-describedby={d}
                  data-pointer="/name"
                  value={form.name}
                  maxLength={64}
                  autoComplete="off"
                  spellcheck={false}
                  aria-invalid={errorOf('/name') ? true : undefined}
                  onInput={(e) => update({ name: (e.target as HTMLInputElement).value, nameEdited: true }, ['/name'])}
                  onBlur={touch('/name')}
                />
              )}
            </Field>
          </div>
          {detail.error ? <ErrorMessage error={detail.error} /> : null}
          {sensor ? (
            <label class="train-check">
              <input type="checkbox" checked={sequence} onChange={(e) => update({ sequence: (e.target as HTMLInputElement).checked, model: 'auto' })} />
              Train on windows of the sensor streams (a sequence job: sessions are resampled and windowed, folds leave subjects out)
            </label>
          ) : null}
        </Card>

        <Card title="Model">
          <div class="family-pick">
            <Field
              label="Model family"
              error={errorOf('/model')}
              hint={
                form.model === 'auto'
                  ? sequence
                    ? 'Auto compares the sequence families available and keeps the best.'
                    : `Auto compares ${task === 'regression' ? 'ridge regression' : 'logistic regression'} and gradient-boosted trees${rows >= 2000 ? ' and a neural network' : ' (a neural network from 2,000 rows)'}, and keeps the best.`
                  : undefined
              }
            >
              {(id, d) => (
                <select id={id} aria-describedby={d} data-pointer="/model" value={form.model} onChange={(e) => update({ model: (e.target as HTMLSelectElement).value }, ['/model'])}>
                  <option value="auto">auto (compare and keep the best)</option>
                  {offered.map((f) => (
                    <option key={f.name} value={f.name}>
                      {familyName(f.name)} ({f.name})
                    </option>
                  ))}
                </select>
              )}
            </Field>
          </div>
          {families.error ? <ErrorMessage error={families.error} /> : null}
          {form.model === 'auto' ? (
            paramFamilies.length ? (
              <div class="param-families">
                <p class="hint">Each family auto tries uses its defaults unless you set them here.</p>
                {paramFamilies.map((f) => (
                  <details key={f.name} open={f.params.some((p) => !!errorOf(`/params/${f.name}/${p.name}`))}>
                    <summary>{familyName(f.name)} hyperparameters</summary>
                    <Params family={f} values={form.params[f.name] ?? {}} errorOf={errorOf} touch={touch} onChange={(k, v) => update({ params: { ...form.params, [f.name]: { ...form.params[f.name], [k]: v } } }, [`/params/${f.name}/${k}`])} />
                  </details>
                ))}
              </div>
            ) : null
          ) : chosen ? (
            <fieldset>
              <legend>{familyName(chosen.name)} hyperparameters</legend>
              <Params family={chosen} values={form.params[chosen.name] ?? {}} errorOf={errorOf} touch={touch} onChange={(k, v) => update({ params: { ...form.params, [chosen.name]: { ...form.params[chosen.name], [k]: v } } }, [`/params/${chosen.name}/${k}`])} />
            </fieldset>
          ) : null}
        </Card>

        <Card title="Validation">
          <div class="form-grid">
            <Field label="Cross-validation folds" error={errorOf('/cv')} hint="2 to 20 (default 5). Families are compared on the same folds.">
              {(id, d) => (
                <input id={id} type="number" inputMode="numeric" min={2} max={20} step={1} placeholder="5" aria-describedby={d} data-pointer="/cv" value={form.cv} aria-invalid={errorOf('/cv') ? true : undefined} onInput={(e) => update({ cv: (e.target as HTMLInputElement).value }, ['/cv'])} onBlur={touch('/cv')} />
              )}
            </Field>
            <Field label="Seed" error={errorOf('/seed')} hint="0 to 4294967295 (default 0): the same seed gives the same folds and model.">
              {(id, d) => (
                <input id={id} type="number" inputMode="numeric" min={0} max={4294967295} step={1} placeholder="0" aria-describedby={d} data-pointer="/seed" value={form.seed} aria-invalid={errorOf('/seed') ? true : undefined} onInput={(e) => update({ seed: (e.target as HTMLInputElement).value }, ['/seed'])} onBlur={touch('/seed')} />
              )}
            </Field>
            {!sequence ? (
              <Field label="Grouping column" error={errorOf('/group')} hint="Rows sharing a value (a patient, a site) stay on one side of every split.">
                {(id, d) => (
                  <select id={id} aria-describedby={d} data-pointer="/group" value={form.group} disabled={!ds} aria-invalid={errorOf('/group') ? true : undefined} onChange={(e) => update({ group: (e.target as HTMLSelectElement).value }, ['/group'])}>
                    <option value="">none (rows are independent)</option>
                    {columns
                      .filter((c) => c !== form.target)
                      .map((c) => (
                        <option key={c} value={c}>
                          {c}
                        </option>
                      ))}
                  </select>
                )}
              </Field>
            ) : null}
          </div>
          {!sequence ? (
            <label class="train-check">
              <input type="checkbox" data-pointer="/nested" checked={form.nested} onChange={(e) => update({ nested: (e.target as HTMLInputElement).checked }, ['/nested'])} />
              Also estimate the whole choice by nested cross-validation (an unbiased score; about {form.cv || 5}× the work)
            </label>
          ) : null}
          {errorOf('/nested') ? <p class="field-error">{errorOf('/nested')}</p> : null}
        </Card>

        {sequence && ds ? <SequenceOptions form={form} columns={columns} colType={colType} errorOf={errorOf} touch={touch} update={update} /> : null}

        {ds ? (
          <Card title="Columns to leave out">
            <details open={form.ignore.length > 0 || !!errorOf('/ignore')}>
              <summary>
                {form.ignore.length ? `${form.ignore.length} column${form.ignore.length === 1 ? '' : 's'} left out` : 'None left out'} <span class="muted">(identifiers and free text are left out by themselves)</span>
              </summary>
              {errorOf('/ignore') ? <p class="field-error">{errorOf('/ignore')}</p> : null}
              <fieldset class="column-checks">
                <legend class="visually-hidden">Columns to leave out of the features</legend>
                {columns
                  .filter((c) => c !== form.target && c !== form.group)
                  .map((c) => {
                    const p = profileCols.get(c);
                    const auto = p?.role === 'ignored';
                    return (
                      <label key={c} class="train-check">
                        <input
                          type="checkbox"
                          data-pointer={form.ignore[0] === c ? '/ignore' : undefined}
                          checked={form.ignore.includes(c)}
                          onChange={(e) => update({ ignore: (e.target as HTMLInputElement).checked ? [...form.ignore, c] : form.ignore.filter((x) => x !== c) }, ['/ignore'])}
                        />
                        {c} {p?.identifier ? <span class="muted">(may identify a person: {p.identifier})</span> : auto ? <span class="muted">(left out already: {p?.reason ?? 'ignored'})</span> : null}
                      </label>
                    );
                  })}
              </fieldset>
            </details>
          </Card>
        ) : null}

        <div class="train-submit">
          <button type="submit" class="btn btn-primary" disabled={busy}>
            {busy ? 'Starting…' : 'Start training'}
          </button>
          <Link href="/jobs">See the jobs</Link>
        </div>
      </form>
    </Page>
  );
}

/** One family's hyperparameters: defaults as placeholders, ranges on the inputs, help as hints. */
function Params(props: { family: FamilyInfo; values: Record<string, string>; errorOf: (k: string) => string | undefined; touch: (k: string) => () => void; onChange: (key: string, value: string) => void }) {
  const { family, values, errorOf, touch, onChange } = props;
  return (
    <div class="form-grid params" data-family={family.name}>
      {family.params.map((p) => {
        const key = `/params/${family.name}/${p.name}`;
        const err = errorOf(key);
        const hint = `${p.help}. ${rangeText(p)[0]!.toUpperCase()}${rangeText(p).slice(1)}; default ${defaultText(p)}${p.dependsOnRows ? ' for this many rows' : ''}.`;
        const common = {
          'data-pointer': key,
          'aria-invalid': err ? true : undefined,
          onBlur: touch(key),
        };
        return (
          <Field key={p.name} label={<code>{p.name}</code>} error={err} hint={err ? undefined : hint}>
            {(id, d) =>
              p.type === 'enum' || p.type === 'bool' ? (
                <select id={id} aria-describedby={d} {...common} value={values[p.name] ?? ''} onChange={(e) => onChange(p.name, (e.target as HTMLSelectElement).value)}>
                  <option value="">default ({defaultText(p)})</option>
                  {(p.type === 'enum' ? p.choices! : ['true', 'false']).map((c) => (
                    <option key={c} value={c}>
                      {c}
                    </option>
                  ))}
                </select>
              ) : p.type === 'intList' ? (
                <input id={id} type="text" aria-describedby={d} {...common} inputMode="numeric" placeholder={defaultText(p)} value={values[p.name] ?? ''} autoComplete="off" onInput={(e) => onChange(p.name, (e.target as HTMLInputElement).value)} />
              ) : (
                <input
                  id={id}
                  type="number"
                  aria-describedby={d}
                  {...common}
                  inputMode={p.type === 'int' ? 'numeric' : 'decimal'}
                  min={p.min}
                  max={p.max}
                  step={p.type === 'int' ? 1 : 'any'}
                  placeholder={defaultText(p)}
                  value={values[p.name] ?? ''}
                  onInput={(e) => onChange(p.name, (e.target as HTMLInputElement).value)}
                />
              )
            }
          </Field>
        );
      })}
    </div>
  );
}

/** A sequence job's options: the stream's columns, resampling and windows. */
function SequenceOptions(props: {
  form: Form;
  columns: string[];
  colType: (c: string) => string;
  errorOf: (k: string) => string | undefined;
  touch: (k: string) => () => void;
  update: (patch: Partial<Form>, keys?: string[]) => void;
}) {
  const { form, columns, colType, errorOf, touch, update } = props;
  const set = (k: SeqKey, v: string) => update({ seq: { ...form.seq, [k]: v } }, [`/sequence/${k}`]);
  const parts = new Set([form.target, ...(['subject', 'time', 'session'] as const).map((k) => form.seq[k] || defaultColumn(columns, k))]);
  const numeric = columns.filter((c) => !parts.has(c) && NUMERIC_TYPES.has(colType(c)));
  const columnSelect = (k: 'subject' | 'time' | 'session', label: string, hint: string) => (
    <Field label={label} error={errorOf(`/sequence/${k}`)} hint={hint}>
      {(id, d) => (
        <select id={id} aria-describedby={d} data-pointer={`/sequence/${k}`} value={form.seq[k] ?? ''} aria-invalid={errorOf(`/sequence/${k}`) ? true : undefined} onChange={(e) => set(k, (e.target as HTMLSelectElement).value)}>
          <option value="">{defaultColumn(columns, k) ? `usual: ${defaultColumn(columns, k)}` : k === 'session' ? 'none (one session per subject)' : 'choose…'}</option>
          {columns.map((c) => (
            <option key={c} value={c}>
              {c}
            </option>
          ))}
        </select>
      )}
    </Field>
  );
  const text = (k: SeqKey, label: string, hint: string, placeholder: string, numberInput?: { min: number; max: number; step: number | 'any' }): ComponentChildren => (
    <Field label={label} error={errorOf(`/sequence/${k}`)} hint={hint}>
      {(id, d) =>
        numberInput ? (
          <input id={id} type="number" inputMode="decimal" min={numberInput.min} max={numberInput.max} step={numberInput.step} aria-describedby={d} data-pointer={`/sequence/${k}`} placeholder={placeholder} value={form.seq[k] ?? ''} aria-invalid={errorOf(`/sequence/${k}`) ? true : undefined} onInput={(e) => set(k, (e.target as HTMLInputElement).value)} onBlur={touch(`/sequence/${k}`)} />
        ) : (
          <input id={id} type="text" autoComplete="off" aria-describedby={d} data-pointer={`/sequence/${k}`} placeholder={placeholder} value={form.seq[k] ?? ''} aria-invalid={errorOf(`/sequence/${k}`) ? true : undefined} onInput={(e) => set(k, (e.target as HTMLInputElement).value)} onBlur={touch(`/sequence/${k}`)} />
        )
      }
    </Field>
  );
  const choice = (k: SeqKey, label: string, hint: string, options: [string, string][]) => (
    <Field label={label} error={errorOf(`/sequence/${k}`)} hint={hint}>
      {(id, d) => (
        <select id={id} aria-describedby={d} data-pointer={`/sequence/${k}`} value={form.seq[k] ?? ''} onChange={(e) => set(k, (e.target as HTMLSelectElement).value)}>
          {options.map(([v, t]) => (
            <option key={v} value={v}>
              {t}
            </option>
          ))}
        </select>
      )}
    </Field>
  );
  return (
    <Card title="Sensor streams">
      <p class="hint">A long-format table: one row per sample. Empty fields take the usual column names and the data's own rate.</p>
      <div class="form-grid">
        {columnSelect('subject', 'Subject column', 'Folds leave whole subjects out.')}
        {columnSelect('time', 'Time column', 'ISO 8601, epoch seconds or milliseconds, or relative times.')}
        {columnSelect('session', 'Session column', 'Splits a subject\'s rows into recordings.')}
        {choice('timeUnit', 'Unit of numeric times', 'How relative times are read.', [
          ['', 'detected'],
          ['s', 'seconds'],
          ['ms', 'milliseconds'],
        ])}
        {text('rate', 'Resample to (Hz)', 'Above 0, at most 10000 (default the data\'s own rate).', 'own rate', { min: 0, max: 10000, step: 'any' })}
        {text('window', 'Window', 'Samples (128) or a duration (2.56s, 500ms).', '2.56s')}
        {text('stride', 'Stride', 'Between window starts, as the window (default half a window).', 'half a window')}
        {choice('label', "A window's label", 'majority or last (classes); mean or last (values).', [
          ['', 'default (majority / mean)'],
          ['majority', 'majority'],
          ['last', 'last'],
          ['mean', 'mean'],
        ])}
        {text('filter', 'Filter', 'lowpass:<hz> or median:<samples>, after resampling.', 'none')}
        {text('maxGap', 'Longest gap (s)', 'A longer gap between samples splits a session (at most 86400).', 'auto', { min: 0, max: 86400, step: 'any' })}
        {choice('balance', 'Balance classes', 'Of the training windows.', [
          ['', 'none'],
          ['over', 'oversample'],
          ['under', 'undersample'],
        ])}
        {text('sensorDropout', 'Sensor dropout', 'Share of training windows also trained with one sensor missing, 0 to 0.9 (default 0.3).', '0.3', { min: 0, max: 0.9, step: 'any' })}
      </div>
      <fieldset class="column-checks">
        <legend>Channels</legend>
        <p class="hint">None ticked: every other numeric column, in the table's order.</p>
        {errorOf('/sequence/channels') ? <p class="field-error">{errorOf('/sequence/channels')}</p> : null}
        {numeric.map((c, i) => (
          <label key={c} class="train-check">
            <input
              type="checkbox"
              data-pointer={i === 0 ? '/sequence/channels' : undefined}
              checked={form.channels.includes(c)}
              onChange={(e) => update({ channels: (e.target as HTMLInputElement).checked ? [...form.channels, c] : form.channels.filter((x) => x !== c) }, ['/sequence/channels'])}
            />
            {c}
          </label>
        ))}
      </fieldset>
    </Card>
  );
}
