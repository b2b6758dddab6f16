/**
 * Datasets: the list (updating on its own), the upload form (train scope) with its progress bar,
 * and a dataset's page: the summary, the profile (columns with histograms or top categories,
 * possible personal identifiers, the target's balance, warnings), and for sensor data the
 * sessions and one session's channels over time.
 */
import { useRef, useState } from 'preact/hooks';
import { api, ApiError, path, upload } from '../api';
import { Async, Badge, Button, Card, Empty, ErrorMessage, Field, fmtBytes, fmtDate, Page, ProgressBar, TableWrap } from '../components/ui';
import { announce, useApi, useTitle } from '../hooks';
import { Link, navigate, useLocation } from '../router';
import { useSession } from '../session';
import { ColumnsCard, IdentifierNotice, TargetCard, WarningsCard } from './datasets/profile';
import { SensorSection } from './datasets/sensor';
import type { Dataset, DatasetDetail } from './datasets/types';
import { sensorColumns, short } from './datasets/types';
import './datasets.css';

/** A dataset's name as the API takes it (`NAME` of src/api/datasets.ts). */
const NAME = /^[A-Za-z0-9][A-Za-z0-9 _.()-]{0,127}$/;

type Format = 'auto' | 'csv' | 'json' | 'ndjson' | 'fit';

/** The format a file's name suggests. */
function formatOf(fileName: string): Exclude<Format, 'auto'> | null {
  const ext = /\.([A-Za-z0-9]+)$/.exec(fileName)?.[1]?.toLowerCase();
  if (ext === 'csv' || ext === 'tsv' || ext === 'txt') return 'csv';
  if (ext === 'json') return 'json';
  if (ext === 'ndjson' || ext === 'jsonl') return 'ndjson';
  if (ext === 'fit') return 'fit';
  return null;
}

const CONTENT_TYPES: Record<Exclude<Format, 'auto'>, string> = {
  csv: 'text/csv',
  json: 'application/json',
  ndjson: 'application/x-ndjson',
  fit: 'application/vnd.ant.fit',
};

/** A dataset name from a file name: its stem, with what the API refuses replaced. */
function nameFromFile(fileName: string): string {
  const stem = fileName.replace(/\.[A-Za-z0-9]+$/, '').replace(/[^A-Za-z0-9 _.()-]/g, '_');
  const name = /^[A-Za-z0-9]/.test(stem) ? stem : `dataset_${stem}`;
  return name.slice(0, 128) || 'dataset';
}

/**
 * An upload's error in words: the line of a malformed file pulled to the front ("line 3: row has
 * 3 fields, header has 2"), a size refusal said plainly.
 */
function uploadError(e: unknown, name: string): Error {
  if (!(e instanceof ApiError)) return e instanceof Error ? e : new Error(String(e));
  if (e.status === 413) return new ApiError(`The file is too large for this server: ${e.message}.`, 413, e.fields);
  if (e.status === 422) {
    const escaped = name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    const m = new RegExp(`^${escaped}(?::(\\d+))?: (.*)$`, 's').exec(e.message);
    if (m) return new ApiError(`The file could not be read${m[1] ? ` at line ${m[1]}` : ''}: ${m[2]}.`, 422, e.fields);
    return new ApiError(`The file could not be read: ${e.message}`, 422, e.fields);
  }
  return e;
}

/** The upload form: file, optional name and format (FIT: subject and session), progress, then the new dataset's page. */
function UploadCard({ onUploaded }: { onUploaded: () => void }) {
  const [file, setFile] = useState<File | null>(null);
  const [name, setName] = useState('');
  const [format, setFormat] = useState<Format>('auto');
  const [subject, setSubject] = useState('');
  const [session, setSession] = useState('');
  const [progress, setProgress] = useState<number | null>(null);
  const [error, setError] = useState<Error | null>(null);
  const [nameError, setNameError] = useState<string | undefined>();
  const [fileError, setFileError] = useState<string | undefined>();
  const ctrl = useRef<AbortController | null>(null);
  const fileInput = useRef<HTMLInputElement>(null);

  const guessed = file ? formatOf(file.name) : null;
  const effective = format === 'auto' ? guessed : format;
  const fit = effective === 'fit';
  const finalName = name.trim() || (file ? nameFromFile(file.name) : '');

  const submit = async (e: Event) => {
    e.preventDefault();
    setError(null);
    if (!file) {
      setFileError('Choose a file to upload.');
      fileInput.current?.focus();
      return;
    }
    if (!NAME.test(finalName)) {
      setNameError('Use letters, digits, spaces and _ . ( ) -, starting with a letter or digit (at most 128 characters).');
      return;
    }
    for (const [what, v] of [['subject', subject], ['session', session]] as const) {
      if (fit && v.trim() && !NAME.test(v.trim())) {
        setError(new Error(`The ${what} may hold letters, digits, spaces and _ . ( ) -, starting with a letter or digit.`));
        return;
      }
    }
    const q = new URLSearchParams({ name: finalName });
    if (format !== 'auto') q.set('format', format);
    else if (fit) q.set('format', 'fit');
    if (fit) {
      if (subject.trim()) q.set('subject', subject.trim());
      q.set('session', session.trim() || nameFromFile(file.name));
    }
    const type = effective ? CONTENT_TYPES[effective] : 'application/octet-stream';
    ctrl.current = new AbortController();
    setProgress(0);
    announce(`Uploading ${file.name}…`);
    try {
      const d = await upload<Dataset>(`/v1/datasets?${q}`, file, type, setProgress, ctrl.current.signal);
      announce(`Uploaded ${d.name}: ${d.rows.toLocaleString('en-US')} rows, ${d.columns.length} columns. Showing its profile.`);
      onUploaded();
      navigate(`/datasets/${encodeURIComponent(d.id)}`);
    } catch (err) {
      if ((err as Error).name === 'AbortError') {
        announce('Upload cancelled.');
      } else {
        const readable = uploadError(err, finalName);
        setError(readable);
        announce(`Upload failed: ${readable.message}`);
      }
      setProgress(null);
    } finally {
      ctrl.current = null;
    }
  };

  const busy = progress !== null;
  return (
    <Card title="Upload a dataset" id="upload">
      <form onSubmit={submit} noValidate class="ds-upload">
        <div class="form-grid">
          <Field label="File" hint={fileError ? undefined : 'CSV (or tab-separated), a JSON array of records, NDJSON, or a Garmin FIT activity file.'} error={fileError}>
            {(id, describedBy) => (
              <input
                id={id}
                ref={fileInput}
                type="file"
                accept=".csv,.tsv,.txt,.json,.ndjson,.jsonl,.fit,text/csv,application/json"
                aria-describedby={describedBy}
                aria-invalid={fileError ? true : undefined}
                disabled={busy}
                onChange={(e) => {
                  const f = e.currentTarget.files?.[0] ?? null;
                  setFile(f);
                  setFileError(undefined);
                  setError(null);
                }}
              />
            )}
          </Field>
          <Field label="Name (optional)" hint={nameError ? undefined : file ? `Default: ${nameFromFile(file.name)}` : 'Default: the file name'} error={nameError}>
            {(id, describedBy) => (
              <input
                id={id}
                type="text"
                value={name}
                maxLength={128}
                placeholder={file ? nameFromFile(file.name) : ''}
                aria-describedby={describedBy}
                aria-invalid={nameError ? true : undefined}
                disabled={busy}
                onInput={(e) => {
                  setName(e.currentTarget.value);
                  setNameError(undefined);
                }}
              />
            )}
          </Field>
          <Field label="Format" hint={format === 'auto' ? (guessed ? `From the file name: ${guessed.toUpperCase()}` : 'Read from the file name, else from the content') : undefined}>
            {(id, describedBy) => (
              <select id={id} value={format} aria-describedby={describedBy} disabled={busy} onChange={(e) => setFormat(e.currentTarget.value as Format)}>
                <option value="auto">Automatic</option>
                <option value="csv">CSV</option>
                <option value="json">JSON array</option>
                <option value="ndjson">NDJSON (one record a line)</option>
                <option value="fit">FIT (Garmin activity)</option>
              </select>
            )}
          </Field>
        </div>
        {fit ? (
          <fieldset>
            <legend>FIT recording</legend>
            <p class="hint">A FIT file becomes a sensor dataset with one row per sample (subject, session, time, channels).</p>
            <div class="form-grid">
              <Field label="Subject (optional)" hint={`Default: ${finalName || 'the dataset name'}`}>
                {(id, describedBy) => <input id={id} type="text" value={subject} aria-describedby={describedBy} disabled={busy} onInput={(e) => setSubject(e.currentTarget.value)} />}
              </Field>
              <Field label="Session (optional)" hint={`Default: ${file ? nameFromFile(file.name) : 'the file name'}`}>
                {(id, describedBy) => <input id={id} type="text" value={session} aria-describedby={describedBy} disabled={busy} onInput={(e) => setSession(e.currentTarget.value)} />}
              </Field>
            </div>
          </fieldset>
        ) : null}
        {busy ? (
          <div class="ds-upload-progress">
            <ProgressBar value={progress} label={`Uploading ${file?.name ?? 'the file'}`} />
            <p class="muted" aria-hidden="true">
              {progress < 1 ? `Uploading ${file ? fmtBytes(file.size) : ''}…` : 'Uploaded; reading and profiling the data…'}
            </p>
          </div>
        ) : null}
        <ErrorMessage error={error} />
        <div class="actions">
          <button type="submit" class="btn btn-primary" disabled={busy}>
            {busy ? 'Uploading…' : 'Upload'}
          </button>
          {busy && progress < 1 ? <Button onClick={() => ctrl.current?.abort()}>Cancel upload</Button> : null}
        </div>
      </form>
    </Card>
  );
}

/** Delete with a confirm step; `onDeleted` after the API said yes. */
function DeleteDataset({ d, onDeleted, compact }: { d: { id: string; name: string }; onDeleted: () => void; compact?: boolean }) {
  const [asking, setAsking] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<Error | null>(null);
  const confirmRef = useRef<HTMLButtonElement>(null);
  const del = async () => {
    setBusy(true);
    setError(null);
    try {
      await api(path('/v1/datasets', d.id), { method: 'DELETE' });
      announce(`Deleted dataset ${d.name}.`);
      onDeleted();
    } catch (e) {
      setError(e as Error);
      announce(`Could not delete ${d.name}: ${(e as Error).message}`);
      setBusy(false);
    }
  };
  if (!asking) {
    return (
      <Button
        kind="danger"
        aria-label={compact ? `Delete ${d.name}` : undefined}
        onClick={() => {
          setAsking(true);
          setTimeout(() => confirmRef.current?.focus(), 0);
        }}
      >
        Delete{compact ? '' : ' dataset'}
      </Button>
    );
  }
  return (
    <div class="ds-confirm" role="group" aria-label={`Confirm deleting ${d.name}`}>
      <span>
        Delete <strong>{d.name}</strong> for good? Models already trained on it keep working.
      </span>
      <span class="actions">
        <button type="button" class="btn btn-danger" ref={confirmRef} disabled={busy} onClick={del}>
          {busy ? 'Deleting…' : 'Yes, delete'}
        </button>
        <Button disabled={busy} onClick={() => { setAsking(false); setError(null); }}>
          Keep it
        </Button>
      </span>
      <ErrorMessage error={error} />
    </div>
  );
}

/** `/datasets`: the datasets of the project and, for train keys, the upload form. */
export function DatasetsPage() {
  useTitle('Datasets');
  const session = useSession();
  const list = useApi<{ datasets: Dataset[] }>('/v1/datasets', 10_000);
  const canTrain = session.can('train');
  return (
    <Page title="Datasets" subtitle="Tables and sensor recordings of this project, each with its profile.">
      {canTrain ? <UploadCard onUploaded={list.reload} /> : null}
      <Card title="All datasets">
        <Async res={list} what="datasets">
          {(d) =>
            d.datasets.length === 0 ? (
              <Empty>No datasets yet.{canTrain ? ' Upload one with the form above.' : ''}</Empty>
            ) : (
              <TableWrap label="Datasets">
                <table class="ds-datasets-table">
                  <thead>
                    <tr>
                      <th scope="col">Name</th>
                      <th scope="col">Format</th>
                      <th scope="col" class="num">Rows</th>
                      <th scope="col" class="num">Columns</th>
                      <th scope="col" class="num">Size</th>
                      <th scope="col">Uploaded</th>
                      {canTrain ? <th scope="col"><span class="ds-visually-hidden">Actions</span></th> : null}
                    </tr>
                  </thead>
                  <tbody>
                    {[...d.datasets].reverse().map((x) => (
                      <tr key={x.id}>
                        <td class="ds-name">
                          <Link href={`/datasets/${encodeURIComponent(x.id)}`}>{x.name}</Link>
                          {sensorColumns(x.columns.map((c) => c.name)) ? (
                            <>
                              {' '}
                              <Badge kind="staging">sensor</Badge>
                            </>
                          ) : null}
                        </td>
                        <td data-label="Format">{x.format.toUpperCase()}</td>
                        <td class="num" data-label="Rows">{short(x.rows)}</td>
                        <td class="num" data-label="Columns">{x.columns.length}</td>
                        <td class="num" data-label="Size">{fmtBytes(x.bytes)}</td>
                        <td data-label="Uploaded">{fmtDate(x.created)}</td>
                        {canTrain ? (
                          <td class="ds-row-actions">
                            <DeleteDataset d={x} compact onDeleted={list.reload} />
                          </td>
                        ) : null}
                      </tr>
                    ))}
                  </tbody>
                </table>
              </TableWrap>
            )
          }
        </Async>
      </Card>
    </Page>
  );
}

/** `/datasets/:id`: the summary and the profile as a page. */
export function DatasetPage({ id }: { id: string }) {
  const res = useApi<DatasetDetail>(path('/v1/datasets', id));
  const { query } = useLocation();
  const session = useSession();
  const d = res.data;
  useTitle(d ? `Dataset ${d.name}` : 'Dataset');
  const sessionParam = Number(query.get('session') ?? '1');
  const sessionIndex = Number.isInteger(sessionParam) && sessionParam >= 1 ? sessionParam - 1 : 0;
  return (
    <Page
      title={d ? d.name : 'Dataset'}
      subtitle={
        d ? (
          <>
            {d.format.toUpperCase()} · {short(d.rows)} rows · {d.columns.length} columns · {fmtBytes(d.bytes)} · uploaded {fmtDate(d.created)} ·{' '}
            <Link href="/datasets">all datasets</Link>
          </>
        ) : (
          <Link href="/datasets">All datasets</Link>
        )
      }
      actions={
        d && session.can('train') ? (
          <>
            <Link href={`/train?dataset=${encodeURIComponent(d.id)}`} class="btn btn-primary ds-train-link">
              Train a model on this dataset
            </Link>
            <DeleteDataset d={d} onDeleted={() => navigate('/datasets')} />
          </>
        ) : undefined
      }
    >
      <Async res={res} what="the dataset">
        {(d) => {
          const p = d.profile;
          const seq = d.sequence ?? p?.sequence;
          return (
            <div>
              <div class="grid2">
                <Card title="Summary" id="summary">
                  <dl class="ds-facts">
                    <div><dt>Rows</dt><dd>{short(d.rows)}</dd></div>
                    <div><dt>Columns</dt><dd>{d.columns.length}</dd></div>
                    <div>
                      <dt>Duplicate rows</dt>
                      <dd>
                        {p ? `${p.approximate?.duplicateRows ? '≈ ' : ''}${short(p.duplicateRows)}` : '–'}
                        {p && p.duplicateRows ? <span class="muted"> ({((100 * p.duplicateRows) / Math.max(1, d.rows)).toFixed(1)}%)</span> : null}
                      </dd>
                    </div>
                    <div><dt>Format</dt><dd>{d.format.toUpperCase()}</dd></div>
                    <div><dt>Size</dt><dd>{fmtBytes(d.bytes)}</dd></div>
                    <div><dt>Uploaded</dt><dd>{fmtDate(d.created)}</dd></div>
                    <div class="ds-wide"><dt>SHA-256</dt><dd><code class="ds-hash">{d.sha256}</code></dd></div>
                    <div class="ds-wide"><dt>ID</dt><dd><code class="ds-hash">{d.id}</code></dd></div>
                  </dl>
                  {p && p.approximate && (p.approximate.quantiles || p.approximate.distinct) ? (
                    <p class="hint">
                      A large file: {[p.approximate.quantiles ? 'quartiles, outliers and histograms' : '', p.approximate.distinct ? 'some distinct counts (≈)' : ''].filter(Boolean).join(' and ')} are
                      estimated from a sample.
                    </p>
                  ) : null}
                </Card>
                {p ? <TargetCard profile={p} asked={query.get('target')} /> : null}
              </div>
              {!p ? <p class="notice">This dataset has no stored profile.</p> : null}
              {p ? <IdentifierNotice profile={p} /> : null}
              {p ? <WarningsCard warnings={[...p.warnings, ...(seq?.warnings ?? [])]} title="Warnings from reading the data" /> : null}
              {p ? <SensorSection id={d.id} profile={p} seq={seq} sessionIndex={sessionIndex} canPlot={session.can('train')} /> : null}
              {p ? <ColumnsCard profile={p} /> : null}
            </div>
          );
        }}
      </Async>
    </Page>
  );
}
