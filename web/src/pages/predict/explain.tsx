/**
 * One prediction's explanation: each input column's contribution as a diverging horizontal bar
 * (right: pushes the output up, left: down), sorted by size, with the base value, the raw output
 * they add up to, the space they are in, and a one-line reading. Plain HTML bars: every number is
 * also text, so the chart reads the same to a screen reader.
 */
import { useId, useState } from 'preact/hooks';
import { fmt, pct } from '../../components/ui';
import type { RecordExplanation, Task } from './types';

const SHOWN = 12;

const SPACE_TEXT: Record<RecordExplanation['space'], string> = {
  'log-odds': 'log-odds',
  logit: 'logit (before the softmax)',
  value: 'the predicted value',
};

const METHOD_TEXT: Record<string, string> = {
  'tree-shap': 'exact TreeSHAP',
  linear: 'coefficient × (value − training mean)',
  'sampling-shapley': 'a sampling Shapley estimate',
};

function signed(x: number, digits = 3): string {
  return x > 0 ? `+${fmt(x, digits)}` : x < 0 ? `−${fmt(-x, digits)}` : '0';
}

/** A number with a true minus sign, as the signed contributions are written. */
function num(x: number, digits = 3): string {
  return x < 0 ? `−${fmt(-x, digits)}` : fmt(x, digits);
}

function sigmoid(x: number): number {
  return 1 / (1 + Math.exp(-x));
}

export function Explanation(props: {
  explanation: RecordExplanation;
  task: Task;
  /** Class labels (index 1 is the positive class of a binary model). */
  classes?: string[] | undefined;
  /** The predicted label (multiclass: the class explained first). */
  label?: string | undefined;
  /** The values sent, by column (shown beside each bar); missing ones were imputed. */
  record: Record<string, unknown>;
}) {
  const { explanation: e, task, classes, record } = props;
  const perKey = typeof e.base !== 'number';
  // A binary model's contributions are in the log-odds of its positive class (classes[1]); the
  // other class's log-odds are exactly their negatives, so either class can be explained.
  const binary = task === 'binary' && !perKey && classes?.length === 2;
  const keys = perKey ? Object.keys(e.base as Record<string, number>) : binary ? classes! : [];
  const [chosen, setChosen] = useState<string | null>(null);
  const [all, setAll] = useState(false);
  const selectId = useId();
  const key = keys.length ? (chosen !== null && keys.includes(chosen) ? chosen : props.label !== undefined && keys.includes(props.label) ? props.label : keys[keys.length - 1]!) : null;
  const sign = binary && key === classes![0] ? -1 : 1;

  const flip = (m: Record<string, number>) => (sign === 1 ? m : Object.fromEntries(Object.entries(m).map(([k, x]) => [k, -x])));
  const base = sign * (perKey ? (e.base as Record<string, number>)[key!]! : (e.base as number));
  const contributions = flip(perKey ? ((e.contributions as Record<string, Record<string, number>>)[key!] ?? {}) : (e.contributions as Record<string, number>));
  const rows = Object.entries(contributions).sort((a, b) => Math.abs(b[1]) - Math.abs(a[1]) || a[0].localeCompare(b[0]));
  const raw = rows.reduce((s, [, c]) => s + c, base);
  const max = rows.reduce((m, [, c]) => Math.max(m, Math.abs(c)), 0) || 1;
  const shown = all ? rows : rows.slice(0, SHOWN);

  // What "up" means: the probability (log-odds) of a class, a class's score, or the predicted value.
  const upOf =
    task === 'binary' ? `the probability of “${key ?? classes?.[1] ?? 'the positive class'}”` : task === 'multiclass' ? `the score of “${key ?? ''}”` : key !== null ? `the predicted ${key}` : 'the predicted value';
  const top = rows[0];
  const total = raw - base;

  return (
    <div class="explain">
      {keys.length ? (
        <div class="field explain-pick">
          <label for={selectId}>{binary ? 'Explain the probability of' : task === 'multiclass' ? 'Explain the score of class' : 'Explain output'}</label>
          <select id={selectId} value={key ?? ''} onChange={(ev) => setChosen((ev.target as HTMLSelectElement).value)}>
            {keys.map((k) => (
              <option key={k} value={k}>
                {k}
              </option>
            ))}
          </select>
        </div>
      ) : null}
      <p class="explain-reading" data-testid="explain-reading">
        {top && top[1] !== 0 ? (
          <>
            <strong>{top[0]}</strong> pushes {upOf} <strong>{top[1] > 0 ? 'up' : 'down'}</strong> the most ({signed(top[1])}); all inputs together push it{' '}
            {total >= 0 ? 'up' : 'down'} by {fmt(Math.abs(total))}.
          </>
        ) : (
          <>No input moves {upOf} away from the base value.</>
        )}
      </p>
      <dl class="explain-sum">
        <div>
          <dt>Base value</dt>
          <dd class="num">{num(base)}</dd>
        </div>
        <div>
          <dt>+ contributions</dt>
          <dd class="num">{signed(total)}</dd>
        </div>
        <div>
          <dt>= raw output</dt>
          <dd class="num">
            {num(raw)}
            {e.space === 'log-odds' ? <span class="muted"> (probability {pct(sigmoid(raw))})</span> : null}
          </dd>
        </div>
        <div>
          <dt>Space</dt>
          <dd>{SPACE_TEXT[e.space] ?? e.space}</dd>
        </div>
      </dl>
      <p class="hint">
        Contributions are in {SPACE_TEXT[e.space] ?? e.space}
        {e.space === 'log-odds' && key !== null ? ` of “${key}”` : ''}
        {sign === -1 ? ` (the API reports the log-odds of “${classes![1]}”: the same numbers with the opposite sign)` : ''}, measured by {METHOD_TEXT[e.method] ?? e.method}; the base value is the model's output
        for a typical record. Bars to the right push {upOf} up, to the left down.
      </p>
      <ol class="contrib" aria-label={`Contribution of each input column to ${upOf}, largest first`}>
        {shown.map(([column, c]) => {
          const w = (Math.abs(c) / max) * 50;
          const v = record[column];
          return (
            <li key={column} class={c > 0 ? 'up' : c < 0 ? 'down' : 'zero'}>
              <span class="contrib-name">
                {column}
                <span class="contrib-value"> = {v === undefined || v === '' ? 'missing (imputed)' : String(v)}</span>
              </span>
              <span class="contrib-track" aria-hidden="true">
                <span class="contrib-bar" style={c >= 0 ? { left: '50%', width: `${w}%` } : { right: '50%', width: `${w}%` }} />
              </span>
              <span class="contrib-num num">
                {signed(c)}
                <span class="sr-only"> ({c > 0 ? 'pushes up' : c < 0 ? 'pushes down' : 'no effect'})</span>
              </span>
            </li>
          );
        })}
      </ol>
      {rows.length > SHOWN ? (
        <button type="button" class="btn" aria-expanded={all} onClick={() => setAll(!all)}>
          {all ? `Show the ${SHOWN} largest only` : `Show all ${rows.length} columns`}
        </button>
      ) : null}
    </div>
  );
}
