/** Small building blocks every page uses, so pages look and behave alike. */
import type { ButtonHTMLAttributes, ComponentChildren } from 'preact';
import { useId } from 'preact/hooks';
import type { ApiError } from '../api';
import type { Loaded } from '../hooks';

/** A page: its heading (the one h1), optional actions beside it, then the content. */
export function Page(props: { title: ComponentChildren; actions?: ComponentChildren; children: ComponentChildren; subtitle?: ComponentChildren }) {
  return (
    <section class="page">
      <div class="page-head">
        <div>
          <h1>{props.title}</h1>
          {props.subtitle ? <p class="muted">{props.subtitle}</p> : null}
        </div>
        {props.actions ? <div class="actions">{props.actions}</div> : null}
      </div>
      {props.children}
    </section>
  );
}

/** A titled box. */
export function Card(props: { title?: ComponentChildren; children: ComponentChildren; class?: string; id?: string }) {
  const id = useId();
  return (
    <section class={`card ${props.class ?? ''}`} aria-labelledby={props.title ? id : undefined} id={props.id}>
      {props.title ? <h2 id={id}>{props.title}</h2> : null}
      {props.children}
    </section>
  );
}

/** A readable error (never raw JSON), with the field problems listed. */
export function ErrorMessage({ error }: { error: ApiError | Error | null }) {
  if (!error) return null;
  const fields = (error as ApiError).fields ?? [];
  return (
    <div class="error" role="alert">
      <strong>{error.message}</strong>
      {fields.length ? (
        <ul>
          {fields.map((f) => (
            <li key={f.pointer + f.message}>
              {f.pointer ? <code>{f.pointer.replace(/^\/body\/?/, '') || 'body'}</code> : null} {f.message}
            </li>
          ))}
        </ul>
      ) : null}
    </div>
  );
}

export function Loading({ what }: { what?: string }) {
  return <p class="muted loading">Loading{what ? ` ${what}` : ''}…</p>;
}

/** Renders a loaded resource: loading, error, or the content. */
export function Async<T>(props: { res: Loaded<T>; what?: string; children: (data: T) => ComponentChildren }) {
  const { data, error, loading } = props.res;
  if (error) return <ErrorMessage error={error} />;
  if (data === null) return loading ? <Loading what={props.what} /> : null;
  return <>{props.children(data)}</>;
}

/** A stage or status badge; the colour is a hint, the text carries the meaning. */
export function Badge({ kind, children }: { kind: string; children: ComponentChildren }) {
  return <span class={`badge badge-${kind}`}>{children}</span>;
}

/** A labelled form control: the label is always there (visible), hints are tied by aria-describedby. */
export function Field(props: { label: ComponentChildren; hint?: ComponentChildren; error?: string | undefined; children: (id: string, describedBy: string | undefined) => ComponentChildren }) {
  const id = useId();
  const hintId = props.hint || props.error ? `${id}-hint` : undefined;
  return (
    <div class={`field ${props.error ? 'field-invalid' : ''}`}>
      <label for={id}>{props.label}</label>
      {props.children(id, hintId)}
      {props.hint || props.error ? (
        <p class={props.error ? 'field-error' : 'hint'} id={hintId}>
          {props.error ?? props.hint}
        </p>
      ) : null}
    </div>
  );
}

export function ProgressBar({ value, label }: { value: number; label: string }) {
  const pct = Math.max(0, Math.min(100, Math.round(value * 100)));
  return (
    <div class="progress" role="progressbar" aria-label={label} aria-valuemin={0} aria-valuemax={100} aria-valuenow={pct}>
      <div class="progress-bar" style={{ width: `${pct}%` }} />
      <span class="progress-text">{pct}%</span>
    </div>
  );
}

export function Empty({ children }: { children: ComponentChildren }) {
  return <p class="empty muted">{children}</p>;
}

/** A table that scrolls sideways inside its own box on a narrow screen instead of widening the page. */
export function TableWrap(props: { children: ComponentChildren; label: string }) {
  return (
    <div class="table-wrap" role="region" aria-label={props.label} tabIndex={0}>
      {props.children}
    </div>
  );
}

export function Button(props: ButtonHTMLAttributes<HTMLButtonElement> & { kind?: 'primary' | 'danger' | 'plain' }) {
  const { kind = 'plain', class: cls, ...rest } = props;
  return <button type="button" class={`btn btn-${kind} ${cls ?? ''}`} {...rest} />;
}

// Formatting: numbers in tabular form, dates in the user's locale.
export function fmt(x: number | null | undefined, digits = 3): string {
  if (x === null || x === undefined || Number.isNaN(x)) return '–';
  if (!Number.isFinite(x)) return x > 0 ? '∞' : '−∞';
  if (Number.isInteger(x) && Math.abs(x) < 1e6) return String(x);
  const a = Math.abs(x);
  if (a !== 0 && (a < 1e-3 || a >= 1e6)) return x.toExponential(2);
  return x.toFixed(digits);
}
export function pct(x: number | null | undefined, digits = 1): string {
  return x === null || x === undefined || Number.isNaN(x) ? '–' : `${(x * 100).toFixed(digits)}%`;
}
export function fmtDate(s: string | number | null | undefined): string {
  if (s === null || s === undefined) return '–';
  const d = new Date(s);
  return Number.isNaN(d.getTime()) ? String(s) : d.toLocaleString();
}
export function fmtBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}
