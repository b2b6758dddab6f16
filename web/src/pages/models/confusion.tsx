/**
 * Confusion matrices: the binary one at a threshold the reader moves (range and number inputs),
 * recomputed live from the out-of-fold ROC points, with sensitivity, specificity, PPV and NPV and
 * their Wilson intervals; the multiclass one as a heat table with each class's recall and precision.
 */
import { useEffect, useId, useMemo, useState } from 'preact/hooks';
import { Button, fmt, pct, TableWrap } from '../../components/ui';
import { wilson } from './meanings';
import { heat } from './plots';
import { operatingPoint, withCounts, youdenThreshold, type OperatingPoint } from './threshold';
import type { RocCurve } from './types';

const ci = (k: number, n: number) => {
  const w = wilson(k, n);
  return w ? `${pct(w.lower)}–${pct(w.upper)}` : '–';
};

/** The confusion matrix and its rates at threshold `t`, with the controls that move it. */
export function ThresholdPanel(props: {
  roc: RocCurve;
  /** The report's matrix at its own threshold, counts[true][pred] with class 1 positive. */
  confusion: number[][];
  reportThreshold: number;
  positive: string;
  negative: string;
  t: number;
  onChange: (t: number) => void;
}) {
  const { roc, confusion, reportThreshold, positive, negative, t, onChange } = props;
  const P = (confusion[1]?.[0] ?? 0) + (confusion[1]?.[1] ?? 0);
  const N = (confusion[0]?.[0] ?? 0) + (confusion[0]?.[1] ?? 0);
  const report = confusion[1] && confusion[0] ? { tp: confusion[1][1]!, fn: confusion[1][0]!, fp: confusion[0][1]!, tn: confusion[0][0]! } : null;
  // At the report's own threshold its exact matrix is known: show it rather than the curve's nearest point.
  const exact = report !== null && t === reportThreshold;
  const op = useMemo(() => {
    const near = operatingPoint(roc, P, N, t);
    return exact && report ? withCounts(near.index, t, report.tp, report.fp, report.tn, report.fn) : near;
  }, [roc, P, N, t, exact]);
  const youden = useMemo(() => youdenThreshold(roc), [roc]);
  const id = useId();
  const [text, setText] = useState(String(t));
  const [bad, setBad] = useState(false);
  // Keep the number box in step with the slider and the buttons (not while its own text is half typed).
  useEffect(() => {
    if (Number(text) !== t) {
      setText(String(Number(t.toFixed(4))));
      setBad(false);
    }
  }, [t]);

  const onNumber = (value: string) => {
    setText(value);
    const v = Number(value);
    const ok = value.trim() !== '' && Number.isFinite(v) && v >= 0 && v <= 1;
    setBad(!ok);
    if (ok) onChange(v);
  };

  return (
    <div class="threshold">
      <div class="threshold-controls">
        <div class="field">
          <label for={`${id}-range`}>Threshold: flag "{positive}" when p ≥ {fmt(t)}</label>
          <input
            id={`${id}-range`}
            type="range"
            min={0}
            max={1}
            step={0.01}
            value={t}
            aria-valuetext={`${fmt(t)}`}
            aria-describedby={`${id}-how`}
            onInput={(e) => onChange(Number((e.currentTarget as HTMLInputElement).value))}
          />
        </div>
        <div class={`field threshold-number ${bad ? 'field-invalid' : ''}`}>
          <label for={`${id}-num`}>Threshold value</label>
          <input
            id={`${id}-num`}
            type="number"
            min={0}
            max={1}
            step={0.001}
            inputMode="decimal"
            value={text}
            aria-invalid={bad}
            aria-describedby={bad ? `${id}-err` : undefined}
            onInput={(e) => onNumber((e.currentTarget as HTMLInputElement).value)}
          />
          {bad ? (
            <p class="field-error" id={`${id}-err`}>
              Enter a number from 0 to 1.
            </p>
          ) : null}
        </div>
        <div class="actions threshold-buttons">
          <Button onClick={() => onChange(reportThreshold)} disabled={t === reportThreshold}>
            Back to {fmt(reportThreshold)}
          </Button>
          {youden !== null ? (
            <Button onClick={() => onChange(youden)} disabled={t === youden} title="The threshold where sensitivity + specificity is largest">
              Best Youden's J ({fmt(youden)})
            </Button>
          ) : null}
        </div>
      </div>
      <p class="hint" id={`${id}-how`}>
        {exact
          ? `At the model's own threshold, ${fmt(reportThreshold)}, these are the exact out-of-fold counts of the evaluation report. `
          : `Computed in your browser from the out-of-fold ROC curve's points and the class counts: the counts are those of the nearest point at or above the threshold${op.pointThreshold > 1 ? ' (nothing flagged)' : `, p ≥ ${fmt(op.pointThreshold, 4)}`}. `}
        The curve keeps at most 200 points, so between them the matrix moves in steps. {P} "{positive}" and {N} "{negative}" rows in all.
      </p>
      <ConfusionTable op={op} positive={positive} negative={negative} />
      <Rates op={op} positive={positive} negative={negative} prevalence={P + N > 0 ? P / (P + N) : null} />
    </div>
  );
}

function ConfusionTable({ op, positive, negative }: { op: OperatingPoint; positive: string; negative: string }) {
  const total = op.tp + op.fp + op.tn + op.fn;
  const cell = (n: number, what: string, testid: string, good: boolean) => (
    <td class={`cm-cell ${good ? 'cm-good' : 'cm-bad'}`} data-testid={testid}>
      <span class="cm-n">{n}</span>
      <span class="cm-what">{what}</span>
    </td>
  );
  return (
    <TableWrap label="Confusion matrix">
      <table class="cm">
        <caption class="visually-hidden">Confusion matrix: rows are the true class, columns the predicted class</caption>
        <thead>
          <tr>
            <td />
            <th scope="col">Predicted {positive}</th>
            <th scope="col">Predicted {negative}</th>
            <th scope="col" class="num">Total</th>
          </tr>
        </thead>
        <tbody>
          <tr>
            <th scope="row">Actually {positive}</th>
            {cell(op.tp, 'true positives', 'cm-tp', true)}
            {cell(op.fn, 'false negatives (missed)', 'cm-fn', false)}
            <td class="num">{op.tp + op.fn}</td>
          </tr>
          <tr>
            <th scope="row">Actually {negative}</th>
            {cell(op.fp, 'false positives (false alarms)', 'cm-fp', false)}
            {cell(op.tn, 'true negatives', 'cm-tn', true)}
            <td class="num">{op.fp + op.tn}</td>
          </tr>
          <tr>
            <th scope="row">Total</th>
            <td class="num">{op.tp + op.fp}</td>
            <td class="num">{op.fn + op.tn}</td>
            <td class="num">{total}</td>
          </tr>
        </tbody>
      </table>
    </TableWrap>
  );
}

function Rates({ op, positive, negative, prevalence }: { op: OperatingPoint; positive: string; negative: string; prevalence: number | null }) {
  const rows: [string, string, number, number, string][] = [
    ['Sensitivity (recall)', 'sens', op.tp, op.tp + op.fn, `"${positive}" cases flagged`],
    ['Specificity', 'spec', op.tn, op.tn + op.fp, `"${negative}" cases cleared`],
    ['PPV (precision)', 'ppv', op.tp, op.tp + op.fp, `flags that are right`],
    ['NPV', 'npv', op.tn, op.tn + op.fn, `clearances that are right`],
    ['Accuracy', 'acc', op.tp + op.tn, op.tp + op.tn + op.fp + op.fn, 'cases classified right'],
  ];
  return (
    <>
      <TableWrap label="Rates at this threshold">
        <table class="rates">
          <thead>
            <tr>
              <th scope="col">At this threshold</th>
              <th scope="col" class="num">Value</th>
              <th scope="col" class="num">95% CI (Wilson)</th>
            </tr>
          </thead>
          <tbody>
            {rows.map(([label, id, k, n, what]) => (
              <tr key={id}>
                <th scope="row">
                  {label}
                  <span class="rate-what">{what}</span>
                </th>
                <td class="num">
                  <span class="rate-value" data-testid={`rate-${id}`}>
                    {n > 0 ? pct(k / n) : '–'}
                  </span>
                  <span class="rate-what">
                    {k} of {n}
                  </span>
                </td>
                <td class="num">{ci(k, n)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </TableWrap>
      <p class="hint">
        The intervals treat the out-of-fold predictions as independent cases. PPV and NPV depend on how common "{positive}" is: {prevalence !== null ? pct(prevalence) : '–'} of these rows; where it is rarer, PPV is lower and NPV higher.
      </p>
    </>
  );
}

/** A k×k confusion matrix as a heat table: shade = share of the true class's row; recall per row, precision per column. */
export function HeatTable(props: { confusion: number[][]; classes: string[]; caption: string; unit: string }) {
  const { confusion, classes } = props;
  const k = confusion.length;
  const label = (i: number) => classes[i] ?? `class ${i}`;
  const rowSum = confusion.map((r) => r.reduce((a, b) => a + b, 0));
  const colSum = Array.from({ length: k }, (_, j) => confusion.reduce((a, r) => a + (r[j] ?? 0), 0));
  return (
    <>
      <TableWrap label={props.caption}>
        <table class="heat">
          <caption class="visually-hidden">{props.caption}: rows are the true class, columns the predicted class</caption>
          <thead>
            <tr>
              <th scope="col">True ↓ / predicted →</th>
              {Array.from({ length: k }, (_, j) => (
                <th scope="col" key={j} class="num">
                  {label(j)}
                </th>
              ))}
              <th scope="col" class="num">Recall</th>
              <th scope="col" class="num">{props.unit}</th>
            </tr>
          </thead>
          <tbody>
            {confusion.map((row, i) => (
              <tr key={i}>
                <th scope="row">{label(i)}</th>
                {row.map((n, j) => {
                  const share = rowSum[i]! > 0 ? n / rowSum[i]! : 0;
                  const [bg, ink] = heat(share);
                  return (
                    <td key={j} class={`num heat-cell ${i === j ? 'heat-diag' : ''}`} style={{ background: bg, color: ink }} title={`${n} of ${rowSum[i]} true "${label(i)}" predicted "${label(j)}"`}>
                      <span class="heat-n">{n}</span>
                      <span class="heat-share">{pct(share, 0)}</span>
                    </td>
                  );
                })}
                <td class="num">
                  <strong>{rowSum[i]! > 0 ? pct(row[i]! / rowSum[i]!) : '–'}</strong>
                </td>
                <td class="num">{rowSum[i]}</td>
              </tr>
            ))}
            <tr>
              <th scope="row">Precision</th>
              {colSum.map((n, j) => (
                <td key={j} class="num">
                  {n > 0 ? pct(confusion[j]![j]! / n) : '–'}
                </td>
              ))}
              <td />
              <td class="num">{rowSum.reduce((a, b) => a + b, 0)}</td>
            </tr>
          </tbody>
        </table>
      </TableWrap>
      <p class="hint">Each cell: the count, and its share of the true class's row (darker: a larger share). The diagonal holds the right answers; recall is the diagonal's share of each row, precision its share of each column.</p>
    </>
  );
}
