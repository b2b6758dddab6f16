/**
 * Administration: the project's API keys (create with scopes, the secret shown once; revoke with
 * a confirm step) and the audit log with filters kept in the URL, so a filtered view can be
 * shared. Both pages need the admin scope (the route table checks it).
 */
import { useEffect, useId, useRef, useState } from 'preact/hooks';
import { api, ApiError, path } from '../api';
import { Async, Badge, Button, Card, Empty, ErrorMessage, Field, fmtDate, Page, TableWrap } from '../components/ui';
import { announce, useApi, useTitle } from '../hooks';
import { Link, navigate, useLocation } from '../router';
import { useSession, type Scope } from '../session';
import './admin.css';

interface Key {
  id: string;
  name: string;
  scopes: Scope[];
  created: string;
  revoked: string | null;
  lastUsed: string | null;
}

const SCOPES: { scope: Scope; meaning: string }[] = [
  { scope: 'read', meaning: 'list and view datasets, jobs and models' },
  { scope: 'predict', meaning: 'send records to models for predictions' },
  { scope: 'train', meaning: 'upload datasets, train models, change stages' },
  { scope: 'admin', meaning: 'everything, plus API keys and the audit log' },
];

/** What the API accepts as a key name (src/api/keys.ts KEY_NAME). */
const KEY_NAME = /^[A-Za-z0-9][A-Za-z0-9 _.:@()-]{0,63}$/;

function DocsLink() {
  return (
    <a href="/docs" target="_blank" rel="noopener">
      API reference (/docs)
    </a>
  );
}

export function KeysPage() {
  useTitle('API keys');
  const keys = useApi<{ keys: Key[] }>('/v1/keys');
  return (
    <Page title="API keys" subtitle="Who may use this project, and for what. A key's secret is shown once, when it is made." actions={<DocsLink />}>
      <CreateKey onCreated={keys.reload} />
      <Card title="Keys of this project">
        <Async res={keys} what="keys">
          {(d) => (d.keys.length ? <KeyTable keys={d.keys} onChange={keys.reload} /> : <Empty>No keys.</Empty>)}
        </Async>
      </Card>
    </Page>
  );
}

function KeyTable({ keys, onChange }: { keys: Key[]; onChange: () => void }) {
  const session = useSession();
  const [confirming, setConfirming] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<ApiError | null>(null);
  const confirmRef = useRef<HTMLButtonElement>(null);
  const me = session.info?.key.id;

  useEffect(() => {
    if (confirming) confirmRef.current?.focus();
  }, [confirming]);

  const revoke = async (k: Key) => {
    setBusy(true);
    setError(null);
    try {
      await api(path('/v1/keys', k.id, 'revoke'), { method: 'POST' });
      setConfirming(null);
      announce(`Key “${k.name}” revoked: it is refused from now on.`);
      onChange();
    } catch (err) {
      setError(err instanceof ApiError ? err : new ApiError(String(err), 0));
      announce('The key was not revoked.');
    } finally {
      setBusy(false);
    }
  };

  // Newest first: the key just made is at the top.
  const sorted = [...keys].sort((a, b) => b.created.localeCompare(a.created));
  return (
    <>
      <ErrorMessage error={error} />
      <TableWrap label="API keys">
        <table class="keys">
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Scopes</th>
              <th scope="col">Created</th>
              <th scope="col">Last used</th>
              <th scope="col">State</th>
              <th scope="col">
                <span class="sr-only">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {sorted.map((k) => (
              <tr key={k.id} class={k.revoked ? 'revoked' : ''}>
                <th scope="row" class="key-name">
                  {k.name}
                  <div class="muted key-id">
                    id <code>{k.id}</code>
                    {k.id === me ? ' · this session' : ''}
                  </div>
                </th>
                <td data-label="Scopes">{k.scopes.join(', ')}</td>
                <td data-label="Created">{fmtDate(k.created)}</td>
                <td data-label="Last used">{k.lastUsed ? fmtDate(k.lastUsed) : <span class="muted">never</span>}</td>
                <td data-label="State">{k.revoked ? <Badge kind="revoked">revoked {fmtDate(k.revoked)}</Badge> : <Badge kind="ok">active</Badge>}</td>
                <td class="key-actions">
                  {k.revoked ? null : confirming === k.id ? (
                    <div class="confirm" role="group" aria-label={`Confirm revoking ${k.name}`}>
                      <span>
                        {k.id === me ? 'This is the key you are signed in with: revoking it signs you out. ' : ''}Revoke “{k.name}”? It is refused from its next request; this cannot be undone.
                      </span>
                      <span class="actions">
                        <button type="button" ref={confirmRef} class="btn btn-danger" disabled={busy} onClick={() => revoke(k)}>
                          {busy ? 'Revoking…' : `Yes, revoke ${k.name}`}
                        </button>
                        <Button disabled={busy} onClick={() => setConfirming(null)}>
                          Cancel
                        </Button>
                      </span>
                    </div>
                  ) : (
                    <Button
                      kind="danger"
                      aria-label={`Revoke ${k.name}`}
                      onClick={() => {
                        setError(null);
                        setConfirming(k.id);
                      }}
                    >
                      Revoke
                    </Button>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </TableWrap>
    </>
  );
}

function CreateKey({ onCreated }: { onCreated: () => void }) {
  const [name, setName] = useState('');
  const [scopes, setScopes] = useState<Scope[]>([]);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<ApiError | null>(null);
  const [problems, setProblems] = useState<{ name?: string; scopes?: string }>({});
  // The secret lives in this component's state only: leaving the page unmounts it and it is gone.
  const [created, setCreated] = useState<(Key & { key: string }) | null>(null);
  const groupHint = useId();

  const submit = async (e: Event) => {
    e.preventDefault();
    const p: { name?: string; scopes?: string } = {};
    if (!KEY_NAME.test(name.trim())) p.name = 'Give it a name of 1–64 letters, digits, spaces or _ . : @ ( ) -, starting with a letter or digit.';
    if (scopes.length === 0) p.scopes = 'Choose at least one scope.';
    setProblems(p);
    if (p.name || p.scopes) {
      announce('The key was not created: check the form.');
      return;
    }
    setBusy(true);
    setError(null);
    try {
      const k = await api<Key & { key: string }>('/v1/keys', { body: { name: name.trim(), scopes } });
      setCreated(k);
      setName('');
      setScopes([]);
      announce(`Key “${k.name}” created. Copy its secret now: it will not be shown again.`);
      onCreated();
    } catch (err) {
      setError(err instanceof ApiError ? err : new ApiError(String(err), 0));
      announce('The key was not created.');
    } finally {
      setBusy(false);
    }
  };

  return (
    <Card title="Create a key">
      {created ? <Secret created={created} onDone={() => setCreated(null)} /> : null}
      <form onSubmit={submit} class="create-key" noValidate>
        <Field label="Name" hint={problems.name ? undefined : 'What it is for, e.g. “wearables gateway”.'} error={problems.name}>
          {(id, hint) => (
            <input id={id} type="text" name="name" maxLength={64} autoComplete="off" aria-describedby={hint} aria-invalid={problems.name ? true : undefined} value={name} onInput={(e) => setName((e.target as HTMLInputElement).value)} />
          )}
        </Field>
        <fieldset aria-describedby={problems.scopes ? groupHint : undefined}>
          <legend>Scopes</legend>
          {SCOPES.map(({ scope, meaning }) => (
            <label key={scope} class="scope">
              <input
                type="checkbox"
                name="scopes"
                value={scope}
                checked={scopes.includes(scope)}
                onChange={(e) => {
                  const on = (e.target as HTMLInputElement).checked;
                  setScopes((s) => (on ? [...s, scope] : s.filter((x) => x !== scope)));
                }}
              />
              <span>
                <strong>{scope}</strong> <span class="muted">— {meaning}</span>
              </span>
            </label>
          ))}
          {problems.scopes ? (
            <p class="field-error" id={groupHint}>
              {problems.scopes}
            </p>
          ) : null}
        </fieldset>
        <ErrorMessage error={error} />
        <button type="submit" class="btn btn-primary" disabled={busy}>
          {busy ? 'Creating…' : 'Create key'}
        </button>
      </form>
    </Card>
  );
}

function Secret({ created, onDone }: { created: Key & { key: string }; onDone: () => void }) {
  const ref = useRef<HTMLInputElement>(null);
  const [copied, setCopied] = useState(false);
  useEffect(() => {
    ref.current?.focus();
    ref.current?.select();
  }, []);
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(created.key);
      setCopied(true);
      announce('The secret is copied.');
    } catch {
      ref.current?.select();
      announce('The secret is selected: press Ctrl+C (⌘C) to copy it.');
    }
  };
  return (
    <div class="secret" role="region" aria-label="The new key's secret">
      <p class="secret-warning">
        <strong>Copy this secret now: you will not see it again.</strong> medfit keeps only its hash. Key “{created.name}” ({created.scopes.join(', ')}).
      </p>
      <Field label="Secret of the new key">
        {(id) => <input id={id} ref={ref} class="secret-value" type="text" readOnly value={created.key} spellcheck={false} autoComplete="off" onFocus={(e) => (e.target as HTMLInputElement).select()} />}
      </Field>
      <div class="actions">
        <Button kind="primary" onClick={copy}>
          {copied ? 'Copied' : 'Copy secret'}
        </Button>
        <Button onClick={onDone}>I have stored it: hide it</Button>
      </div>
    </div>
  );
}

// The audit log.

interface AuditEntry {
  id: number;
  keyId: string;
  action: string;
  resource: string | null;
  rows: number | null;
  status: number;
  at: string;
  requests: number;
}
interface AuditPage {
  entries: AuditEntry[];
  next: number | null;
}

const ACTIONS = ['dataset.create', 'dataset.read', 'dataset.delete', 'job.create', 'job.cancel', 'model.upload', 'model.stage', 'model.predict', 'model.infer', 'model.stream', 'key.create', 'key.revoke', 'denied'];
const FILTERS = ['action', 'key', 'since', 'until'] as const;
type Filters = Record<(typeof FILTERS)[number], string>;
const PAGE = 100;

/** An ISO instant as a `datetime-local` value in this browser's time zone, and back. */
function toLocalInput(iso: string): string {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return '';
  const p = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
}
function fromLocalInput(v: string): string {
  if (!v) return '';
  const d = new Date(v);
  return Number.isNaN(d.getTime()) ? '' : d.toISOString();
}

export function AuditPage() {
  useTitle('Audit log');
  const { query } = useLocation();
  const applied: Filters = { action: query.get('action') ?? '', key: query.get('key') ?? '', since: query.get('since') ?? '', until: query.get('until') ?? '' };
  const q = new URLSearchParams({ limit: String(PAGE) });
  for (const f of FILTERS) if (applied[f]) q.set(f, applied[f]);
  const first = useApi<AuditPage>(`/v1/audit?${q}`);
  const keys = useApi<{ keys: Key[] }>('/v1/keys');
  const keyNames = new Map((keys.data?.keys ?? []).map((k) => [k.id, k.name]));
  const filtered = FILTERS.some((f) => applied[f]);

  return (
    <Page title="Audit log" subtitle="Every change and every prediction request of this project, newest first." actions={<DocsLink />}>
      <Card title="Filters">
        <AuditFilters applied={applied} keys={keys.data?.keys ?? []} />
      </Card>
      <Card title={filtered ? 'Matching entries' : 'Entries'}>
        <Async res={first} what="the audit log">
          {(page) => <AuditEntries key={q.toString()} first={page} query={q} keyNames={keyNames} />}
        </Async>
      </Card>
    </Page>
  );
}

function AuditFilters({ applied, keys }: { applied: Filters; keys: Key[] }) {
  const [draft, setDraft] = useState<Filters>(applied);
  const appliedText = JSON.stringify(applied);
  // Back, Forward or a shared link change the URL: the form follows it.
  useEffect(() => setDraft(applied), [appliedText]);
  const set = (f: keyof Filters, v: string) => setDraft((d) => ({ ...d, [f]: v }));

  const apply = (next: Filters) => {
    const q = new URLSearchParams(location.search);
    for (const f of FILTERS) {
      if (next[f]) q.set(f, next[f]);
      else q.delete(f);
    }
    const s = q.toString();
    navigate(location.pathname + (s ? `?${s}` : ''), true);
    announce('Filters applied.');
  };

  return (
    <form
      class="audit-filters"
      onSubmit={(e) => {
        e.preventDefault();
        apply(draft);
      }}
    >
      <div class="form-grid">
        <Field label="Action">
          {(id) => (
            <select id={id} value={draft.action} onChange={(e) => set('action', (e.target as HTMLSelectElement).value)}>
              <option value="">any action</option>
              {(ACTIONS.includes(draft.action) || !draft.action ? ACTIONS : [...ACTIONS, draft.action]).map((a) => (
                <option key={a} value={a}>
                  {a}
                </option>
              ))}
            </select>
          )}
        </Field>
        <Field label="Key">
          {(id) => (
            <select id={id} value={draft.key} onChange={(e) => set('key', (e.target as HTMLSelectElement).value)}>
              <option value="">any key</option>
              {keys.map((k) => (
                <option key={k.id} value={k.id}>
                  {k.name} ({k.id}){k.revoked ? ' — revoked' : ''}
                </option>
              ))}
              {draft.key && !keys.some((k) => k.id === draft.key) ? <option value={draft.key}>{draft.key}</option> : null}
            </select>
          )}
        </Field>
        <Field label="Since" hint="From this time on (your time zone).">
          {(id, hint) => <input id={id} type="datetime-local" aria-describedby={hint} value={draft.since ? toLocalInput(draft.since) : ''} onChange={(e) => set('since', fromLocalInput((e.target as HTMLInputElement).value))} />}
        </Field>
        <Field label="Until" hint="Before this time.">
          {(id, hint) => <input id={id} type="datetime-local" aria-describedby={hint} value={draft.until ? toLocalInput(draft.until) : ''} onChange={(e) => set('until', fromLocalInput((e.target as HTMLInputElement).value))} />}
        </Field>
      </div>
      <div class="actions">
        <button type="submit" class="btn btn-primary">
          Apply filters
        </button>
        <Button
          onClick={() => {
            const none = { action: '', key: '', since: '', until: '' };
            setDraft(none);
            apply(none);
          }}
        >
          Clear filters
        </Button>
      </div>
    </form>
  );
}

/** The first page from the URL's filters, then older pages appended on demand (`before`). */
function AuditEntries({ first, query, keyNames }: { first: AuditPage; query: URLSearchParams; keyNames: Map<string, string> }) {
  const [more, setMore] = useState<AuditEntry[]>([]);
  const [next, setNext] = useState<number | null>(first.next);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<ApiError | null>(null);
  // A reload of the first page (same filters) starts the list again.
  useEffect(() => {
    setMore([]);
    setNext(first.next);
  }, [first]);

  const older = async () => {
    if (next === null) return;
    setBusy(true);
    setError(null);
    const q = new URLSearchParams(query);
    q.set('before', String(next));
    try {
      const page = await api<AuditPage>(`/v1/audit?${q}`);
      setMore((m) => [...m, ...page.entries]);
      setNext(page.next);
      announce(page.entries.length ? `${page.entries.length} older entries shown.` : 'No older entries.');
    } catch (err) {
      setError(err instanceof ApiError ? err : new ApiError(String(err), 0));
    } finally {
      setBusy(false);
    }
  };

  const entries = [...first.entries, ...more];
  if (!entries.length) return <Empty>No entries match these filters.</Empty>;
  return (
    <>
      <p class="muted" data-testid="audit-count">
        {entries.length} entr{entries.length === 1 ? 'y' : 'ies'} shown{next !== null ? '; older ones exist' : ''}.
      </p>
      <TableWrap label="Audit log entries">
        <table class="audit">
          <thead>
            <tr>
              <th scope="col">Time</th>
              <th scope="col">Key</th>
              <th scope="col">Action</th>
              <th scope="col">Resource</th>
              <th scope="col" class="num">Rows</th>
              <th scope="col" class="num">Status</th>
            </tr>
          </thead>
          <tbody>
            {entries.map((e) => (
              <tr key={e.id}>
                <td class="nowrap" data-label="Time">{fmtDate(e.at)}</td>
                <td data-label="Key">
                  <span>
                    {keyNames.get(e.keyId) ?? e.keyId}
                    {keyNames.has(e.keyId) ? <span class="muted key-id block">{e.keyId}</span> : null}
                  </span>
                </td>
                <td data-label="Action">
                  <span>
                    <code>{e.action}</code>
                    {e.requests > 1 ? <span class="muted" title={`${e.requests} identical requests`}> ×{e.requests}</span> : null}
                  </span>
                </td>
                <td class="resource" data-label="Resource">
                  <Resource text={e.resource} />
                </td>
                <td class="num" data-label="Rows">{e.rows ?? '–'}</td>
                <td class="num" data-label="Status">
                  <Badge kind={e.status < 400 ? 'ok' : 'failed'}>{e.status}</Badge>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </TableWrap>
      <ErrorMessage error={error} />
      {next !== null ? (
        <p>
          <Button onClick={older} disabled={busy}>
            {busy ? 'Loading…' : 'Older entries'}
          </Button>
        </p>
      ) : (
        <p class="muted">That is the oldest entry{FILTERS.some((f) => query.get(f)) ? ' matching these filters' : ''}.</p>
      )}
    </>
  );
}

/** A resource of an entry, linked to its page where the app has one. */
function Resource({ text }: { text: string | null }) {
  if (text === null) return <span>–</span>;
  const m = /^(dataset|job|model):(.+)$/.exec(text);
  if (m) {
    const [, kind, id] = m;
    if (kind === 'dataset') return <Link href={path('/datasets', id!)}>{text}</Link>;
    if (kind === 'job') return <Link href={path('/jobs', id!)}>{text}</Link>;
    const v = /^(.+)\/([0-9]+)$/.exec(id!);
    return <Link href={v ? path('/models', v[1]!, 'versions', v[2]!) : path('/models', id!)}>{text}</Link>;
  }
  return <span>{text}</span>;
}
