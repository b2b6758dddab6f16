/**
 * Predict with one model version: a form made from the version's input schema (numbers with the
 * training median as placeholder, categories as drop-downs), the answer with a probability bar
 * per class and the record's explanation; a CSV of records predicted in chunks, whose results
 * download as a CSV (built in memory: nothing is kept in the browser's storage); the `curl`
 * command for the same request. Sequence models get a note and a curl example instead.
 */
import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { api, ApiError, path } from '../api';
import { Async, Badge, Button, Card, Empty, ErrorMessage, Field, fmt, Page, pct, ProgressBar, TableWrap } from '../components/ui';
import { announce, useApi, useTitle } from '../hooks';
import { Link } from '../router';
import { useSession } from '../session';
import { csvRecords, CsvError, toCsv } from './predict/csv';
import { Explanation } from './predict/explain';
import { curlCommand, inputSpecs, MAX_FORM_INPUTS, recordOf } from './predict/inputs';
import type { InputSpec, Prediction, PredictAnswer, VersionDetail } from './predict/types';
import './predict.css';

/** Records per request when predicting a CSV (the API takes more; smaller keeps progress moving). */
const CHUNK = 1000;

export function PredictPage({ name, version }: { name: string; version: string }) {
  useTitle(`Predict · ${name} v${version}`);
  const session = useSession();
  const res = useApi<VersionDetail>(path('/v1/models', name, 'versions', version));
  return (
    <Page
      title={`Predict with ${name} v${version}`}
      subtitle={
        res.data ? (
          <>
            {res.data.task} · {res.data.source === 'uploaded' ? 'uploaded ONNX model' : res.data.family} · stage <Badge kind={res.data.stage}>{res.data.stage}</Badge>
          </>
        ) : undefined
      }
      actions={session.can('read') ? <Link href={path('/models', name, 'versions', version)}>Back to the version</Link> : undefined}
    >
      <Async res={res} what="the model version">
        {(v) => <Predictor key={`${v.name}/${v.version}`} v={v} />}
      </Async>
    </Page>
  );
}

function Predictor({ v }: { v: VersionDetail }) {
  const url = path('/v1/models', v.name, 'versions', v.version, 'predict');
  const specs = useMemo(() => inputSpecs(v), [v]);
  if (v.sequence) return <SequenceNote v={v} url={url} />;
  if (specs.length === 0 || specs.length > MAX_FORM_INPUTS) {
    return (
      <Card title="Predict through the API">
        <p>
          {specs.length === 0
            ? 'This version names no input columns the page can make a form of.'
            : `This model takes ${specs.length} inputs, too many for a form: send records through the API (or a CSV below).`}
        </p>
        <Curl url={url} body={{ records: [Object.fromEntries(specs.slice(0, 3).map((s) => [s.name, 0]))] }} />
        {specs.length ? <CsvPredict v={v} url={url} specs={specs} /> : null}
      </Card>
    );
  }
  return <TablePredictor v={v} url={url} specs={specs} />;
}

/**
 * What a blank field becomes: the fitted pipeline's fill value (the training rows' median, or
 * the most frequent category or boolean), which the server substitutes for an absent field.
 */
function useTypical(v: VersionDetail): Record<string, string> {
  return useMemo(() => {
    const out: Record<string, string> = {};
    for (const s of v.inputColumns ?? []) {
      if (s.fill === undefined || s.fill === null) continue;
      if (s.kind === 'boolean') out[s.column] = s.fill ? 'true' : 'false';
      else if (s.kind === 'datetime') out[s.column] = new Date(Number(s.fill)).toISOString();
      else out[s.column] = typeof s.fill === 'number' ? String(+s.fill.toPrecision(6)) : String(s.fill);
    }
    return out;
  }, [v]);
}

interface Outcome {
  prediction: Prediction;
  record: Record<string, unknown>;
  sent: string;
  warnings: string[];
  /** Why the explanation is missing, when it was asked for and refused. */
  explainNote?: string;
}

function TablePredictor({ v, url, specs }: { v: VersionDetail; url: string; specs: InputSpec[] }) {
  const typical = useTypical(v);
  const [values, setValues] = useState<Record<string, string>>({});
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<ApiError | null>(null);
  const [outcome, setOutcome] = useState<Outcome | null>(null);
  const resultRef = useRef<HTMLDivElement>(null);
  const explainable = v.source === 'trained';
  const record = recordOf(specs, values);
  const body = explainable ? { records: [record], explain: true } : { records: [record] };
  const sent = JSON.stringify(record);
  const classes = v.target?.classes ?? v.classes ?? undefined;
  const missing = specs.filter((s) => record[s.name] === undefined).length;

  const set = (name: string, value: string) => setValues((old) => ({ ...old, [name]: value }));

  const submit = async (e: Event) => {
    e.preventDefault();
    // The server imputes absent fields but needs at least one to go on.
    if (specs.length > 0 && missing === specs.length) {
      setOutcome(null);
      setError(new ApiError('Fill in at least one field (blank ones are imputed as in training), or press "Fill blanks with typical values".', 0));
      return;
    }
    setBusy(true);
    setError(null);
    setOutcome(null);
    announce('Predicting…');
    try {
      let answer: PredictAnswer;
      let explainNote: string | undefined;
      try {
        answer = await api<PredictAnswer>(url, { body });
      } catch (err) {
        // A model that cannot be explained (trained before explanations, say) still predicts.
        const cannotExplain = explainable && err instanceof ApiError && (err.status === 422 || err.status === 413 || err.fields.some((f) => f.pointer === '/explain')) && /expla/i.test(err.message + err.fields.map((f) => f.pointer).join());
        if (!cannotExplain) throw err;
        explainNote = (err as ApiError).message;
        answer = await api<PredictAnswer>(url, { body: { records: [record] } });
      }
      const p = answer.predictions[0]!;
      // One record: "record 0: " says nothing here.
      const warnings = (answer.warnings ?? []).map((w) => w.replace(/^record 0: /, ''));
      setOutcome({ prediction: p, record, sent, warnings, ...(explainNote ? { explainNote } : {}) });
      announce(`Prediction: ${'label' in p ? p.label : 'value' in p ? fmt(p.value) : Object.entries(p.values).map(([k, x]) => `${k} ${fmt(x)}`).join(', ')}.`);
      requestAnimationFrame(() => resultRef.current?.focus());
    } catch (err) {
      setError(err instanceof ApiError ? err : new ApiError(String(err), 0));
      announce('The prediction failed.');
    } finally {
      setBusy(false);
    }
  };

  return (
    <>
      <div class="grid2 predict-top">
        <Card title="One record">
          <form onSubmit={submit} class="predict-form" aria-describedby="predict-form-hint">
            <p class="hint" id="predict-form-hint">
              {v.source === 'uploaded'
                ? 'An uploaded ONNX model needs every input: fill in each number.'
                : 'Blank fields are imputed as in training (a number with the training median shown as its placeholder, a category with the most frequent one).'}
            </p>
            <div class="form-grid">
              {specs.map((s) => (
                <InputField key={s.name} spec={s} value={values[s.name] ?? ''} typical={typical[s.name]} onInput={(x) => set(s.name, x)} />
              ))}
            </div>
            <div class="actions predict-actions">
              <button type="submit" class="btn btn-primary" disabled={busy}>
                {busy ? 'Predicting…' : 'Predict'}
              </button>
              {Object.keys(typical).length ? (
                <Button
                  onClick={() => {
                    setValues((old) => ({ ...typical, ...Object.fromEntries(Object.entries(old).filter(([, x]) => x.trim() !== '')) }));
                    announce('Blank fields filled with the typical values.');
                  }}
                >
                  Fill blanks with typical values
                </Button>
              ) : null}
              <Button
                onClick={() => {
                  setValues({});
                  announce('Form cleared.');
                }}
              >
                Clear
              </Button>
              <span class="muted">
                {specs.length - missing} of {specs.length} filled
              </span>
            </div>
          </form>
        </Card>
        <div class="stack">
          <Card title="Prediction">
            <div ref={resultRef} tabIndex={-1} class="predict-result" data-testid="prediction">
              <ErrorMessage error={error} />
              {outcome ? <Result v={v} outcome={outcome} classes={classes} stale={outcome.sent !== sent} /> : !error ? <Empty>Fill in the record (or leave fields blank) and press Predict.</Empty> : null}
            </div>
          </Card>
          <Card title="The same request with curl">
            <Curl url={url} body={body} />
          </Card>
        </div>
      </div>
      {outcome?.prediction.explanation ? (
        <div id="explanation" tabIndex={-1} class="explain-anchor">
          <Card title="Why: each input's contribution">
            <Explanation
              explanation={outcome.prediction.explanation}
              task={v.task}
              classes={classes}
              label={'label' in outcome.prediction ? outcome.prediction.label : undefined}
              record={outcome.record}
            />
          </Card>
        </div>
      ) : outcome?.explainNote ? (
        <Card title="Why">
          <p class="notice">No explanation for this prediction: {outcome.explainNote}</p>
        </Card>
      ) : null}
      <Card title="Predict a CSV file">
        <CsvPredict v={v} url={url} specs={specs} />
      </Card>
    </>
  );
}

function InputField(props: { spec: InputSpec; value: string; typical: string | undefined; onInput: (v: string) => void }) {
  const { spec: s, value, typical } = props;
  const hint =
    s.kind === 'number' || s.kind === 'integer'
      ? typical !== undefined
        ? `median ${typical}`
        : undefined
      : s.kind === 'datetime'
        ? 'ISO 8601, e.g. 2024-05-01T08:30:00Z'
        : s.kind === 'category'
          ? `${s.choices!.length} categories`
          : undefined;
  const onInput = (e: Event) => props.onInput((e.target as HTMLInputElement | HTMLSelectElement).value);
  return (
    <Field label={s.name} hint={hint}>
      {(id, describedBy) =>
        s.kind === 'category' ? (
          <select id={id} name={s.name} aria-describedby={describedBy} value={value} onChange={onInput}>
            <option value="">{typical !== undefined ? `blank (imputed: ${typical})` : 'blank (imputed)'}</option>
            {s.choices!.map((c) => (
              <option key={c} value={c}>
                {c}
              </option>
            ))}
          </select>
        ) : s.kind === 'boolean' ? (
          <select id={id} name={s.name} aria-describedby={describedBy} value={value} onChange={onInput}>
            <option value="">{typical !== undefined ? `blank (imputed: ${typical})` : 'blank (imputed)'}</option>
            <option value="true">true</option>
            <option value="false">false</option>
          </select>
        ) : s.kind === 'number' || s.kind === 'integer' ? (
          <input
            id={id}
            name={s.name}
            type="number"
            inputMode="decimal"
            step={s.kind === 'integer' ? 1 : 'any'}
            placeholder={typical}
            aria-describedby={describedBy}
            value={value}
            onInput={onInput}
          />
        ) : (
          <input id={id} name={s.name} type="text" placeholder={typical ?? (s.kind === 'datetime' ? '2024-05-01T08:30:00Z' : undefined)} aria-describedby={describedBy} value={value} onInput={onInput} />
        )
      }
    </Field>
  );
}

function Result({ v, outcome, classes, stale }: { v: VersionDetail; outcome: Outcome; classes: string[] | undefined; stale: boolean }) {
  const p = outcome.prediction;
  return (
    <div>
      {stale ? <p class="notice">The form has changed since: this is the result for the record as it was sent. Press Predict again for the new values.</p> : null}
      {'label' in p ? (
        <>
          <p class="predict-label">
            <span class="muted">{v.target && typeof v.target.column === 'string' ? `${v.target.column}: ` : 'Label: '}</span>
            <strong data-testid="predicted-label">{p.label}</strong>
          </p>
          <ul class="probs" aria-label="Probability of each class">
            {(classes && classes.every((c) => c in p.probabilities) ? classes : Object.keys(p.probabilities)).map((c) => {
              const x = p.probabilities[c] ?? 0;
              return (
                <li key={c} class={c === p.label ? 'chosen' : ''}>
                  <span class="prob-name">{c}</span>
                  <span class="prob-track" aria-hidden="true">
                    <span class="prob-bar" style={{ width: `${Math.max(0, Math.min(100, x * 100))}%` }} />
                  </span>
                  <span class="prob-num num">{pct(x)}</span>
                </li>
              );
            })}
          </ul>
        </>
      ) : 'value' in p ? (
        <p class="predict-label">
          <span class="muted">{v.target && typeof v.target.column === 'string' ? `${v.target.column}: ` : 'Value: '}</span>
          <strong data-testid="predicted-value">{fmt(p.value, 4)}</strong>
        </p>
      ) : (
        <dl class="predict-values">
          {Object.entries(p.values).map(([k, x]) => (
            <div key={k}>
              <dt>{k}</dt>
              <dd class="num">{fmt(x, 4)}</dd>
            </div>
          ))}
        </dl>
      )}
      {outcome.warnings.length ? (
        <div class="notice predict-warnings">
          <strong>Notes from the server</strong>
          <ul>
            {outcome.warnings.slice(0, 8).map((w) => (
              <li key={w}>{w}</li>
            ))}
          </ul>
        </div>
      ) : null}
      {p.explanation ? (
        <p>
          <a
            href="#explanation"
            onClick={(e) => {
              // The router owns the URL: scroll to the card without adding a hash to it.
              e.preventDefault();
              const card = document.getElementById('explanation');
              card?.scrollIntoView({ block: 'start' });
              card?.focus();
            }}
          >
            See why: each input's contribution
          </a>
        </p>
      ) : null}
    </div>
  );
}

/** A copyable command; copying falls back to selecting the text where the clipboard is refused. */
function Curl({ url, body }: { url: string; body: unknown }) {
  const text = curlCommand(`${location.origin}${url}`, body);
  const ref = useRef<HTMLPreElement>(null);
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(text);
      announce('The curl command is copied.');
    } catch {
      const sel = getSelection();
      if (ref.current && sel) {
        sel.selectAllChildren(ref.current);
        announce('The command is selected: press Ctrl+C (⌘C) to copy it.');
      }
    }
  };
  return (
    <div class="curl">
      <pre ref={ref} tabIndex={0} aria-label="curl command" data-testid="curl">
        <code>{text}</code>
      </pre>
      <div class="actions">
        <Button onClick={copy}>Copy command</Button>
        <span class="hint">Set MEDFIT_KEY to a key with the predict scope first; the key is never shown here.</span>
      </div>
    </div>
  );
}

/** Predicted rows of a CSV, as the download and the preview hold them. */
interface CsvResult {
  header: string[];
  rows: (string | number | null)[][];
  url: string;
  filename: string;
  warnings: string[];
}

function CsvPredict({ v, url, specs }: { v: VersionDetail; url: string; specs: InputSpec[] }) {
  const [file, setFile] = useState<{ name: string; records: Record<string, string>[]; header: string[] } | null>(null);
  const [error, setError] = useState<Error | null>(null);
  const [progress, setProgress] = useState<number | null>(null);
  const [result, setResult] = useState<CsvResult | null>(null);
  const ctrl = useRef<AbortController | null>(null);

  // The object URL lives as long as the result on screen; leaving the page drops it and the rows.
  useEffect(() => () => {
    ctrl.current?.abort();
  }, []);
  useEffect(() => {
    const u = result?.url;
    return () => {
      if (u) URL.revokeObjectURL(u);
    };
  }, [result]);

  const choose = async (e: Event) => {
    const input = e.target as HTMLInputElement;
    const f = input.files?.[0];
    setError(null);
    setResult(null);
    setFile(null);
    if (!f) return;
    try {
      const { header, records } = csvRecords(await f.text());
      setFile({ name: f.name, header, records });
      announce(`${f.name}: ${records.length} records read.`);
    } catch (err) {
      setError(err instanceof CsvError ? new Error(`${f.name} could not be read: ${err.message}.`) : (err as Error));
      announce('The file could not be read.');
    }
  };

  const run = async () => {
    if (!file) return;
    const c = new AbortController();
    ctrl.current = c;
    setError(null);
    setResult(null);
    setProgress(0);
    announce(`Predicting ${file.records.length} rows…`);
    const predictions: Prediction[] = [];
    const warnings: string[] = [];
    try {
      for (let start = 0; start < file.records.length; start += CHUNK) {
        const chunk = file.records.slice(start, start + CHUNK);
        const answer = await api<PredictAnswer>(url, { body: { records: chunk }, signal: c.signal });
        predictions.push(...answer.predictions);
        for (const w of answer.warnings ?? []) {
          // The API counts records from 0 within a request; the file's rows count from 1.
          const text = w.replace(/^record (\d+):/, (_, k: string) => `row ${start + Number(k) + 1}:`);
          if (warnings.length < 50) warnings.push(text);
        }
        setProgress(predictions.length / file.records.length);
      }
      const built = buildCsv(v, predictions);
      const blob = new Blob([toCsv(built.header, built.rows)], { type: 'text/csv;charset=utf-8' });
      const base = file.name.replace(/\.csv$/i, '');
      setResult({ ...built, url: URL.createObjectURL(blob), filename: `${base}-predictions-${v.name}-v${v.version}.csv`, warnings });
      announce(`${predictions.length} rows predicted; the CSV is ready to download.`);
    } catch (err) {
      if ((err as Error).name === 'AbortError') {
        announce('Stopped.');
      } else {
        const e = err instanceof ApiError ? err : new ApiError(String(err), 0);
        const row = predictions.length + 1;
        setError(new ApiError(`Stopped at the chunk starting with row ${row}: ${e.message}`, e.status, e.fields));
        announce('The CSV prediction failed.');
      }
    } finally {
      setProgress(null);
      ctrl.current = null;
    }
  };

  const known = new Set(specs.map((s) => s.name));
  const matched = file ? file.header.filter((h) => known.has(h)).length : 0;

  return (
    <div class="csv-predict">
      <p class="hint">
        A CSV with a header row naming the model's input columns; other columns are ignored, {v.source === 'uploaded' ? 'and every input needs a value' : 'blank cells are imputed as in training'}. It is read in this browser and sent
        in requests of up to {CHUNK.toLocaleString()} records; the predictions come back as a CSV with each record's row number (1 = the first row after the header).
      </p>
      <Field label="CSV file to predict">
        {(id) => <input id={id} type="file" accept=".csv,text/csv" onChange={choose} disabled={progress !== null} />}
      </Field>
      {file ? (
        <p>
          {file.name}: <strong>{file.records.length.toLocaleString()}</strong> records; {matched} of the model's {specs.length} inputs found
          {matched < specs.length ? (v.source === 'uploaded' ? ' (the model needs them all)' : ' (the others are imputed)') : ''}.
        </p>
      ) : null}
      {file && matched === 0 ? <p class="notice">None of the file's columns is an input of this model: check the header row.</p> : null}
      <div class="actions">
        {file ? (
          <button type="button" class="btn btn-primary" onClick={run} disabled={progress !== null}>
            Predict {file.records.length.toLocaleString()} rows
          </button>
        ) : null}
        {progress !== null ? <Button onClick={() => ctrl.current?.abort()}>Stop</Button> : null}
      </div>
      {progress !== null ? <ProgressBar value={progress} label="Rows predicted" /> : null}
      <ErrorMessage error={error} />
      {result ? (
        <div class="csv-result">
          <p>
            <a class="btn btn-primary" href={result.url} download={result.filename}>
              Download predictions ({result.rows.length.toLocaleString()} rows, CSV)
            </a>
          </p>
          {result.warnings.length ? (
            <details class="predict-warnings">
              <summary>{result.warnings.length >= 50 ? 'The first 50 notes' : `${result.warnings.length} note${result.warnings.length === 1 ? '' : 's'}`} from the server</summary>
              <ul>
                {result.warnings.map((w, i) => (
                  <li key={i}>{w}</li>
                ))}
              </ul>
            </details>
          ) : null}
          <TableWrap label="The first predicted rows">
            <table>
              <caption class="muted">The first {Math.min(10, result.rows.length)} rows</caption>
              <thead>
                <tr>
                  {result.header.map((h) => (
                    <th key={h} scope="col" class={h === 'label' ? '' : 'num'}>
                      {h}
                    </th>
                  ))}
                </tr>
              </thead>
              <tbody>
                {result.rows.slice(0, 10).map((r, i) => (
                  <tr key={i}>
                    {r.map((x, j) => (
                      <td key={j} class={typeof x === 'number' ? 'num' : ''}>
                        {typeof x === 'number' && j > 0 ? fmt(x, 4) : String(x ?? '')}
                      </td>
                    ))}
                  </tr>
                ))}
              </tbody>
            </table>
          </TableWrap>
        </div>
      ) : null}
    </div>
  );
}

/** The result CSV: the row number, then the label and a probability per class, or the value(s). */
function buildCsv(v: VersionDetail, predictions: Prediction[]): { header: string[]; rows: (string | number | null)[][] } {
  const first = predictions[0];
  if (first && 'label' in first) {
    const classes = (v.target?.classes ?? v.classes ?? Object.keys(first.probabilities)).filter((c) => c in first.probabilities);
    return {
      header: ['row', 'label', ...classes.map((c) => `probability_${c}`)],
      rows: predictions.map((p, i) => ('label' in p ? [i + 1, p.label, ...classes.map((c) => p.probabilities[c] ?? null)] : [i + 1, null])),
    };
  }
  if (first && 'values' in first) {
    const outputs = Object.keys(first.values);
    return { header: ['row', ...outputs], rows: predictions.map((p, i) => ('values' in p ? [i + 1, ...outputs.map((o) => p.values[o] ?? null)] : [i + 1])) };
  }
  return { header: ['row', 'value'], rows: predictions.map((p, i) => [i + 1, 'value' in p ? p.value : null]) };
}

/** Sequence models predict raw sensor samples: the API does it; the page shows how. */
function SequenceNote({ v, url }: { v: VersionDetail; url: string }) {
  const s = v.sequence!;
  const step = 1 / (s.rate || 1);
  const time = (k: number) => (s.timeUnit === 'ms' ? Math.round(k * step * 1000) : s.timeUnit === 's' ? +(k * step).toFixed(6) : new Date(Date.UTC(2024, 4, 1, 8, 0, 0) + k * step * 1000).toISOString());
  const sample = (k: number) => ({ [s.columns.time]: time(k), ...Object.fromEntries(s.channels.map((c) => [c, 0])) });
  // One window's worth (capped), so the example runs as it is and answers one window.
  const n = Math.max(1, Math.min(s.window || 1, 256));
  const body = { samples: Array.from({ length: n }, (_, k) => sample(k)), subject: 'subject-1', ...(s.columns.session ? { session: 'session-1' } : {}) };
  return (
    <Card title="A sequence model: predict through the API">
      <p>
        This model reads raw sensor samples ({s.channels.length} channel{s.channels.length === 1 ? '' : 's'}: {s.channels.join(', ')}; time in “{s.columns.time}”), resampled to{' '}
        {fmt(s.rate)} Hz and cut into windows of {s.window} steps every {s.stride} steps. Send a stream's samples in time order to the API: it answers one prediction per
        window, with the window's start and end. There is no form for this here: the command below sends one window of zeros ({n} samples) to show the request's
        shape; put your sensor's readings in their place.
      </p>
      <Curl url={url} body={body} />
    </Card>
  );
}
