/**
 * A table profile as a page: the columns (type, role, missing share, distinct values, range or
 * top categories, outliers, a histogram), the columns that may identify people, and the target's
 * balance. Plain CSS bars: light enough for dozens of columns, and each has its text alternative.
 */
import { setQuery } from '../../router';
import { useMemo, useState } from 'preact/hooks';
import { Badge, Card, Empty, Field, fmtDate, TableWrap } from '../../components/ui';
import type { ColumnProfile, Histogram, TableProfile } from './types';
import { SENSOR_COLUMNS, share, short } from './types';

/** A value of a column for display: dates for datetime columns, short numbers otherwise. */
function value(c: ColumnProfile, x: number | undefined): string {
  if (x === undefined) return '–';
  return c.type === 'datetime' || epochMs(c) ? fmtDate(x) : short(x);
}

/** A sensor table's time column in epoch milliseconds (FIT uploads, most exports): shown as dates. */
function epochMs(c: ColumnProfile): boolean {
  return (SENSOR_COLUMNS.time as readonly string[]).includes(c.name) && c.type === 'integer' && (c.min ?? 0) > 1e11 && (c.max ?? 0) < 1e14;
}

/** The bars of a histogram; `below` and `above` (outliers outside the bins) as separate bars. */
export function MiniHistogram({ h, name, large }: { h: Histogram; name: string; large?: boolean }) {
  const top = Math.max(1, ...h.counts, h.below, h.above);
  const total = h.counts.reduce((a, b) => a + b, 0) + h.below + h.above;
  const lo = h.edges[0]!;
  const hi = h.edges[h.edges.length - 1]!;
  let peak = 0;
  h.counts.forEach((c, i) => {
    if (c > h.counts[peak]!) peak = i;
  });
  const describe =
    `Histogram of ${name}: ${short(total)} values in ${h.counts.length} bins from ${short(lo)} to ${short(hi)}, ` +
    `the tallest ${short(h.edges[peak])} to ${short(h.edges[peak + 1])} (${short(h.counts[peak])} values)` +
    (h.below ? `; ${short(h.below)} below the range` : '') +
    (h.above ? `; ${short(h.above)} above the range` : '') +
    (h.exact ? '' : '; counts estimated from a sample');
  const bar = (count: number, title: string, cls = '') => (
    <span class={`ds-hbar ${cls}`} title={title} style={{ height: `${count ? Math.max(4, (100 * count) / top) : 0}%` }} />
  );
  return (
    <div class={`ds-hist ${large ? 'ds-hist-large' : ''}`}>
      <div class="ds-hist-bars" role="img" aria-label={describe}>
        {h.below ? bar(h.below, `${short(h.below)} values below ${short(lo)} (outliers)`, 'ds-hbar-out') : null}
        {h.counts.map((c, i) => bar(c, `${short(h.edges[i])} to ${short(h.edges[i + 1])}: ${short(c)}`))}
        {h.above ? bar(h.above, `${short(h.above)} values above ${short(hi)} (outliers)`, 'ds-hbar-out') : null}
      </div>
      <div class="ds-hist-axis" aria-hidden="true">
        <span>{h.below ? '‹ ' : ''}{short(lo)}</span>
        <span>{short(hi)}{h.above ? ' ›' : ''}</span>
      </div>
    </div>
  );
}

/** A small bar with a share beside it (missing cells). */
function ShareBar({ part, whole, label }: { part: number; whole: number; label: string }) {
  const p = whole ? (100 * part) / whole : 0;
  return (
    <span class="ds-sharebar" title={`${short(part)} of ${short(whole)} ${label}`}>
      <span class="ds-sharebar-track" aria-hidden="true">
        <span class={`ds-sharebar-fill ${p > 20 ? 'ds-sharebar-high' : ''}`} style={{ width: `${p ? Math.max(3, p) : 0}%` }} />
      </span>
      <span class={p ? '' : 'muted'}>{share(part, whole)}</span>
    </span>
  );
}

/** Horizontal bars, one per category, with counts and shares. */
export function CategoryBars({ items, total, max = 100 }: { items: { label: string; count: number; muted?: boolean }[]; total: number; max?: number }) {
  const top = Math.max(1, ...items.map((i) => i.count));
  return (
    <ul class="ds-catbars">
      {items.slice(0, max).map((it) => (
        <li key={it.label}>
          <span class={`ds-catbars-label ${it.muted ? 'muted' : ''}`} title={it.label}>{it.label}</span>
          <span class="ds-catbars-track" aria-hidden="true">
            <span class={`ds-catbars-fill ${it.muted ? 'ds-catbars-muted' : ''}`} style={{ width: `${(100 * it.count) / top}%` }} />
          </span>
          <span class="ds-catbars-num">
            {short(it.count)} <span class="muted">({share(it.count, total)})</span>
          </span>
        </li>
      ))}
    </ul>
  );
}

/** Present values of a column: rows less missing cells. */
function present(c: ColumnProfile, rows: number): number {
  return Math.max(0, rows - c.missing);
}

/** The categories of a categorical or boolean column, with "other values" when the top list is not all. */
function categories(c: ColumnProfile, rows: number): { label: string; count: number; muted?: boolean }[] {
  const items: { label: string; count: number; muted?: boolean }[] = (c.top ?? []).map((t) => ({ label: String(t.value), count: t.count }));
  const listed = items.reduce((a, b) => a + b.count, 0);
  const rest = present(c, rows) - c.invalid - listed;
  if (rest > 0 && c.distinct > items.length) items.push({ label: `${short(c.distinct - items.length)} other values`, count: rest, muted: true });
  return items;
}

/** The summary cell: range for numbers and dates, top categories for categories. */
function Summary({ c, rows }: { c: ColumnProfile; rows: number }) {
  // The API leaves out the values of a column that may identify a person; say so rather than "–".
  if (c.identifier && !(c.top && c.top.length) && c.min === undefined) return <span class="hint">values not shown</span>;
  if (c.top && c.top.length) {
    const items = categories(c, rows);
    return <CategoryBars items={items.slice(0, 3)} total={present(c, rows)} />;
  }
  if ((c.type === 'datetime' || epochMs(c)) && c.min !== undefined) {
    return (
      <dl class="ds-mini">
        <dt>from</dt>
        <dd>{value(c, c.min)}</dd>
        <dt>to</dt>
        <dd>{value(c, c.max)}</dd>
      </dl>
    );
  }
  if (c.min !== undefined) {
    return (
      <dl class="ds-mini">
        <dt>min</dt>
        <dd>{value(c, c.min)}</dd>
        <dt>median</dt>
        <dd>{value(c, c.median)}</dd>
        <dt>max</dt>
        <dd>{value(c, c.max)}</dd>
      </dl>
    );
  }
  return <span class="muted">–</span>;
}

function TypeBadge({ c }: { c: ColumnProfile }) {
  return <span class="ds-type">{c.type}</span>;
}

/** Which columns have what a warning is about. */
function matchesFilter(c: ColumnProfile, filter: string, only: string): boolean {
  if (only === 'flagged' && !c.identifier) return false;
  if (only === 'missing' && !c.missing) return false;
  if (only === 'ignored' && c.role !== 'ignored') return false;
  if (only === 'outliers' && !c.outliers) return false;
  return !filter || c.name.toLowerCase().includes(filter.toLowerCase());
}

/** The columns of a profile: one row each, with a filter. */
export function ColumnsCard({ profile }: { profile: TableProfile }) {
  const [filter, setFilter] = useState('');
  const [only, setOnly] = useState('all');
  const rows = profile.rows;
  const shown = profile.columns.filter((c) => matchesFilter(c, filter, only));
  return (
    <Card title={`Columns (${profile.columns.length})`} id="columns">
      <div class="form-grid ds-filters">
        <Field label="Find a column">{(id) => <input id={id} type="search" value={filter} onInput={(e) => setFilter(e.currentTarget.value)} autoComplete="off" />}</Field>
        <Field label="Show">
          {(id) => (
            <select id={id} value={only} onChange={(e) => setOnly(e.currentTarget.value)}>
              <option value="all">All columns</option>
              <option value="flagged">Possible personal identifiers</option>
              <option value="missing">With missing values</option>
              <option value="outliers">With outliers</option>
              <option value="ignored">Ignored for training</option>
            </select>
          )}
        </Field>
      </div>
      {shown.length === 0 ? (
        <Empty>No column matches.</Empty>
      ) : (
        <TableWrap label="Columns of the dataset">
          <table class="ds-columns-table">
            <thead>
              <tr>
                <th scope="col">Column</th>
                <th scope="col">Type</th>
                <th scope="col">Missing</th>
                <th scope="col" class="num">Distinct</th>
                <th scope="col">Values</th>
                <th scope="col" class="num">Outliers</th>
                <th scope="col">Distribution</th>
              </tr>
            </thead>
            <tbody>
              {shown.map((c) => (
                <tr key={c.name} class={c.identifier ? 'ds-row-flagged' : ''}>
                  <th scope="row" class="ds-colname">
                    <span class="ds-colname-text">{c.name}</span>
                    {c.role === 'target' ? (
                      <>
                        {' '}
                        <Badge kind="staging">target</Badge>
                      </>
                    ) : null}
                    {c.role === 'ignored' ? (
                      <span class="ds-why">
                        <Badge kind="none">ignored</Badge> {c.reason ?? ''}
                      </span>
                    ) : null}
                    {c.identifier ? (
                      <span class="ds-why ds-why-warn">
                        <Badge kind="warn">⚠ possible identifier</Badge> {c.identifier}
                      </span>
                    ) : null}
                  </th>
                  <td data-label="Type">
                    <TypeBadge c={c} />
                    {c.invalid ? <span class="ds-why ds-why-warn">{short(c.invalid)} unreadable</span> : null}
                  </td>
                  <td data-label="Missing">
                    <ShareBar part={c.missing} whole={rows} label="cells missing" />
                  </td>
                  <td class="num" data-label="Distinct">
                    {c.distinctApprox ? '≈' : ''}
                    {short(c.distinct)}
                  </td>
                  <td class="ds-values" data-label="Values">
                    <Summary c={c} rows={rows} />
                  </td>
                  <td class="num" data-label="Outliers">{c.outliers === undefined ? <span class="muted">–</span> : short(c.outliers)}</td>
                  <td class="ds-dist" data-label="Distribution">{c.histogram && c.histogram.counts.length ? <MiniHistogram h={c.histogram} name={c.name} /> : c.top && c.top.length ? <TopStrip c={c} rows={rows} /> : <span class="muted">–</span>}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </TableWrap>
      )}
      <p class="hint">
        Histograms cover each column's bulk (within 1.5 interquartile ranges of the quartiles); the values past it, the outliers, are the purple bars at the ends. Hover a bar for its range
        and count.
      </p>
    </Card>
  );
}

/** A category column's distribution as one stacked strip (the top categories' shares). */
function TopStrip({ c, rows }: { c: ColumnProfile; rows: number }) {
  const items = categories(c, rows);
  const total = Math.max(1, items.reduce((a, b) => a + b.count, 0));
  const text = `Categories of ${c.name}: ${items.map((i) => `${i.label} ${share(i.count, total)}`).join(', ')}`;
  return (
    <div class="ds-strip" role="img" aria-label={text}>
      {items.map((it, i) => (
        <span key={it.label} class={`ds-strip-part ds-strip-${it.muted ? 'other' : i % 6}`} style={{ width: `${(100 * it.count) / total}%` }} title={`${it.label}: ${short(it.count)} (${share(it.count, total)})`} />
      ))}
    </div>
  );
}

/** Columns that may identify a person, with why, above the columns table. */
export function IdentifierNotice({ profile }: { profile: TableProfile }) {
  const flagged = profile.columns.filter((c) => c.identifier);
  if (!flagged.length) return null;
  return (
    <div class="notice ds-notice-warn" role="note">
      <strong>
        ⚠ {flagged.length} column{flagged.length === 1 ? '' : 's'} may identify a person.
      </strong>{' '}
      Remove or pseudonymise {flagged.length === 1 ? 'it' : 'them'} before sharing this dataset; identifier columns are left out of training.
      <ul>
        {flagged.map((c) => (
          <li key={c.name}>
            <code>{c.name}</code>: {c.identifier}
          </li>
        ))}
      </ul>
    </div>
  );
}

/** Names that usually hold the outcome, in order of preference. */
const TARGET_NAMES = ['target', 'label', 'class', 'outcome', 'diagnosis', 'y', 'activity', 'result', 'status'];

/** Whether a column can be shown as a target (classes or a numeric summary). */
function targetable(c: ColumnProfile): boolean {
  return !c.identifier && c.role !== 'ignored' && ['categorical', 'boolean', 'integer', 'numeric'].includes(c.type);
}

/** The target to show: the profile's, the one in the URL, or a guess (a usual name, else the last few-valued category). */
export function chooseTarget(profile: TableProfile, asked: string | null): { column: ColumnProfile | undefined; guessed: boolean } {
  const by = (n: string | undefined) => (n === undefined ? undefined : profile.columns.find((c) => c.name === n));
  if (asked !== null) return { column: by(asked), guessed: false };
  const known = by(profile.target?.column);
  if (known) return { column: known, guessed: false };
  const cands = profile.columns.filter(targetable);
  for (const n of TARGET_NAMES) {
    const c = cands.find((x) => x.name.toLowerCase() === n);
    if (c) return { column: c, guessed: true };
  }
  const few = [...cands].reverse().find((c) => (c.type === 'categorical' || c.type === 'boolean') && c.distinct >= 2 && c.distinct <= 20);
  return { column: few, guessed: true };
}

/** Class counts of a target column: the profile's balance, the category counts, or an integer's one-value bins. */
function classCounts(profile: TableProfile, c: ColumnProfile): { label: string; count: number; muted?: boolean }[] | null {
  if (profile.target?.column === c.name && profile.target.balance) return Object.entries(profile.target.balance).map(([label, count]) => ({ label, count }));
  if (c.top && c.top.length && (c.type === 'categorical' || c.type === 'boolean')) return categories(c, profile.rows);
  const h = c.histogram;
  if (c.type === 'integer' && h && c.distinct <= 20 && h.edges.length > 1 && h.edges[1]! - h.edges[0]! === 1) {
    return h.counts.map((count, i) => ({ label: String((h.edges[i]! + h.edges[i + 1]!) / 2), count })).filter((x) => x.count > 0);
  }
  return null;
}

/** The target's balance (class counts as bars) or its summary, with a column picker. */
export function TargetCard({ profile, asked }: { profile: TableProfile; asked: string | null }) {
  const { column: c, guessed } = chooseTarget(profile, asked);
  const options = profile.columns.filter(targetable);
  const counts = useMemo(() => (c ? classCounts(profile, c) : null), [profile, c]);
  return (
    <Card title="Target" id="target">
      <Field
        label="Target column"
        hint={
          c && guessed
            ? 'A guess from the column names and values; choose the column the model should predict.'
            : 'The column a model would predict. Training asks for it again; this only changes what is shown.'
        }
      >
        {(id, describedBy) => (
          <select id={id} aria-describedby={describedBy} value={c?.name ?? ''} onChange={(e) => setQuery('target', e.currentTarget.value || null)}>
            <option value="">(none)</option>
            {options.map((o) => (
              <option key={o.name} value={o.name}>
                {o.name} ({o.type})
              </option>
            ))}
          </select>
        )}
      </Field>
      {!c ? (
        <Empty>Choose a column to see how its values are spread.</Empty>
      ) : counts ? (
        <Balance c={c} counts={counts} />
      ) : c.min !== undefined ? (
        <div>
          <dl class="ds-facts">
            <div><dt>min</dt><dd>{short(c.min)}</dd></div>
            <div><dt>median</dt><dd>{short(c.median)}</dd></div>
            <div><dt>mean</dt><dd>{short(c.mean)}</dd></div>
            <div><dt>max</dt><dd>{short(c.max)}</dd></div>
            <div><dt>std</dt><dd>{short(c.std)}</dd></div>
            <div><dt>quartiles</dt><dd>{short(c.q1)} – {short(c.q3)}</dd></div>
            <div><dt>missing</dt><dd>{short(c.missing)}</dd></div>
          </dl>
          {c.histogram ? <MiniHistogram h={c.histogram} name={c.name} large /> : null}
        </div>
      ) : (
        <Empty>No summary for this column.</Empty>
      )}
    </Card>
  );
}

function Balance({ c, counts }: { c: ColumnProfile; counts: { label: string; count: number; muted?: boolean }[] }) {
  const total = counts.reduce((a, b) => a + b.count, 0);
  const classes = counts.filter((x) => !x.muted);
  const smallest = classes.reduce((a, b) => (b.count < a.count ? b : a), classes[0] ?? { label: '', count: 0 });
  const largest = classes.reduce((a, b) => (b.count > a.count ? b : a), classes[0] ?? { label: '', count: 0 });
  // Imbalanced: the smallest class has under a third of the largest's rows (binary: under 25 %).
  const imbalanced = classes.length >= 2 && smallest.count * 3 < largest.count;
  return (
    <div>
      <p class="ds-balance-head">
        <strong>{classes.length}</strong> class{classes.length === 1 ? '' : 'es'} of <code>{c.name}</code> over {short(total)} rows
        {c.missing ? `; ${short(c.missing)} rows have no value` : ''}.
      </p>
      <CategoryBars items={counts} total={total} />
      {imbalanced ? (
        <p class="notice ds-notice-warn ds-balance-note">
          Imbalanced: the smallest class, <strong>{smallest.label}</strong>, is {share(smallest.count, total)} of the rows, the largest, <strong>{largest.label}</strong>, {share(largest.count, total)}. Judge models by sensitivity, PPV and the precision-recall
          curve, not accuracy alone.
        </p>
      ) : classes.length >= 2 ? (
        <p class="hint">The smallest class is {share(smallest.count, total)} of the rows.</p>
      ) : null}
    </div>
  );
}

/** The profile's warnings (inference findings, duplicate rows). */
export function WarningsCard({ warnings, title = 'Warnings' }: { warnings: { code: string; message: string; column?: string }[]; title?: string }) {
  if (!warnings.length) return null;
  return (
    <Card title={`${title} (${warnings.length})`} id="warnings">
      <ul class="ds-warnings">
        {warnings.map((w, i) => (
          <li key={`${w.code}-${i}`}>
            <Badge kind="warn">{w.code.replace(/_/g, ' ')}</Badge> {w.column && !w.message.includes(w.column) ? <code>{w.column}</code> : null} {w.message}
          </li>
        ))}
      </ul>
    </Card>
  );
}
