/**
 * Sensor (long-format sequence) datasets: the sessions, channels and labels, and one session's
 * channels over time from `GET /v1/datasets/:id/series` — one small uPlot chart per channel with
 * a synchronised cursor, each bucket's minimum-to-maximum band (so a one-sample spike still shows),
 * gaps left as gaps, and the label track painted behind the lines with its legend and a table as
 * the text alternative.
 */
import { setQuery } from '../../router';
import { useEffect, useMemo, useState } from 'preact/hooks';
import type uPlot from 'uplot';
import { path } from '../../api';
import { Chart, COLORS, type ChartOptions } from '../../components/chart';
import { Async, Button, Card, Empty, Field, fmtDate, TableWrap } from '../../components/ui';
import { useApi } from '../../hooks';
import { CategoryBars } from './profile';
import type { SequenceProfile, SessionSeries, TableProfile } from './types';
import { fmtDuration, LABEL_FILLS, sensorColumns, short } from './types';

/** Buckets asked for per channel: about a point per pixel of a wide screen. */
const POINTS = 1000;

/** Most distinct values of a label column (`SERIES_MAX_LABELS` of src/api/datasets.ts). */
const MAX_LABELS = 50;

interface Prepared {
  /** x values (seconds from the session's start), with a gap point wherever the time jumps. */
  xs: (number | null)[];
  /** Per x, the bucket it shows (-1: a gap point). */
  bucketOf: number[];
  /** Seconds between buckets (median) and the estimated sampling rate. */
  step: number;
  rate: number;
  duration: number;
  gaps: number;
  /** Runs of one label: [from, to) in seconds. */
  runs: { label: string; from: number; to: number }[];
  /** Label → its fill colour and seconds covered in this session. */
  labels: { label: string; fill: string; seconds: number }[];
}

function median(xs: number[]): number {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[s.length >> 1]!;
}

/** Turns a series answer into plot-ready x values, gaps, label runs and session facts. */
function prepare(s: SessionSeries): Prepared {
  const n = s.seconds.length;
  const diffs: number[] = [];
  for (let i = 1; i < n; i++) diffs.push(s.seconds[i]! - s.seconds[i - 1]!);
  const step = diffs.length ? median(diffs) : 0;
  const rate = step > 0 ? s.bucket / step : NaN;
  // A jump past what a bucket takes plus the gap that would split a session in training (2 s, or 5 samples).
  const gapAt = step + Math.max(2, Number.isFinite(rate) ? 5 / rate : 2);
  const xs: (number | null)[] = [];
  const bucketOf: number[] = [];
  let gaps = 0;
  for (let i = 0; i < n; i++) {
    if (i > 0 && s.seconds[i]! - s.seconds[i - 1]! > gapAt) {
      gaps++;
      xs.push((s.seconds[i]! + s.seconds[i - 1]!) / 2);
      bucketOf.push(-1);
    }
    xs.push(s.seconds[i]!);
    bucketOf.push(i);
  }
  const lastSize = s.samples - s.bucket * (n - 1);
  const duration = n ? s.seconds[n - 1]! + (Number.isFinite(rate) ? Math.max(0, lastSize - 1) / rate : 0) : 0;
  const runs: Prepared['runs'] = [];
  const colour = new Map<string, string>();
  const seconds = new Map<string, number>();
  if (s.labels) {
    const v = s.labels.values;
    for (let i = 0; i < n; i++) {
      const l = v[i];
      if (l === null || l === undefined) continue;
      if (!colour.has(l)) colour.set(l, LABEL_FILLS[colour.size % LABEL_FILLS.length]!);
      const to = i + 1 < n ? s.seconds[i + 1]! : duration;
      // A bucket across a gap covers only its own step.
      const end = to - s.seconds[i]! > gapAt ? s.seconds[i]! + step : to;
      const last = runs[runs.length - 1];
      if (last && last.label === l && last.to === s.seconds[i]) last.to = end;
      else runs.push({ label: l, from: s.seconds[i]!, to: end });
      seconds.set(l, (seconds.get(l) ?? 0) + (end - s.seconds[i]!));
    }
  }
  const labels = [...colour.entries()].map(([label, fill]) => ({ label, fill, seconds: seconds.get(label) ?? 0 }));
  return { xs, bucketOf, step, rate, duration, gaps, runs, labels };
}

/** Axis ticks in seconds, as clock times once a session is long. */
function tick(total: number) {
  return (v: number) => (total >= 120 ? fmtDuration(v) : `${Number(v.toFixed(2))} s`);
}

/** One channel's chart: the bucket's min-to-max band, with the label track painted behind. */
function ChannelChart({ s, p, channel, colour, syncKey }: { s: SessionSeries; p: Prepared; channel: number; colour: string; syncKey: string }) {
  const ch = s.channels[channel]!;
  const single = s.bucket === 1;
  const data = useMemo(() => {
    const min = p.bucketOf.map((b) => (b < 0 ? null : ch.min[b]!));
    const max = p.bucketOf.map((b) => (b < 0 ? null : ch.max[b]!));
    return (single ? [p.xs, max] : [p.xs, min, max]) as unknown as uPlot.AlignedData;
  }, [p, ch, single]);
  const options = useMemo<ChartOptions>(() => {
    const fmtX = tick(p.duration);
    const labelAt = (idx: number | null | undefined) => {
      if (idx === null || idx === undefined || !s.labels) return '';
      const b = p.bucketOf[idx];
      const l = b !== undefined && b >= 0 ? s.labels.values[b] : null;
      return l ? ` · ${l}` : '';
    };
    const paintLabels = (u: uPlot) => {
      if (!p.runs.length) return;
      const { ctx, bbox } = u;
      const fills = new Map(p.labels.map((l) => [l.label, l.fill]));
      ctx.save();
      ctx.beginPath();
      ctx.rect(bbox.left, bbox.top, bbox.width, bbox.height);
      ctx.clip();
      for (const r of p.runs) {
        const x0 = u.valToPos(r.from, 'x', true);
        const x1 = u.valToPos(r.to, 'x', true);
        ctx.fillStyle = fills.get(r.label) ?? '#eee';
        ctx.fillRect(x0, bbox.top, Math.max(1, x1 - x0), bbox.height);
      }
      ctx.restore();
    };
    const value = (_u: uPlot, v: number | null) => (v === null || v === undefined ? '–' : short(v));
    return {
      scales: { x: { time: false } },
      legend: { show: true, live: true },
      cursor: { sync: { key: syncKey }, drag: { x: false, y: false }, points: { show: false } },
      axes: [
        { stroke: '#4f5b67', grid: { stroke: '#e6eaee', width: 1 }, ticks: { stroke: '#d0d7de', width: 1 }, values: (_u, splits) => splits.map(fmtX) },
        { stroke: '#4f5b67', size: 58, grid: { stroke: '#e6eaee', width: 1 }, ticks: { stroke: '#d0d7de', width: 1 }, values: (_u, splits) => splits.map((v) => short(v)) },
      ],
      series: [
        { label: 'time', value: (_u, v, _si, idx) => (v === null || v === undefined ? '–' : `${fmtX(v)}${labelAt(idx)}`) },
        ...(single
          ? [{ label: ch.name, stroke: colour, width: 1.25, value }]
          : [
              { label: `${ch.name} min`, stroke: colour, width: 1, value },
              { label: `${ch.name} max`, stroke: colour, width: 1, value },
            ]),
      ],
      ...(single ? {} : { bands: [{ series: [2, 1] as [number, number], fill: `${colour}55` }] }),
      hooks: { drawClear: [paintLabels] },
    };
  }, [p, ch, colour, syncKey, single, s.labels]);
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of ch.min) if (v !== null && v < lo) lo = v;
  for (const v of ch.max) if (v !== null && v > hi) hi = v;
  const text =
    `${ch.name} over ${fmtDuration(p.duration)} of session ${s.session || s.subject}: ` +
    (lo === Infinity ? 'no values' : `from ${short(lo)} to ${short(hi)}`) +
    (single ? ', every sample shown' : `, each point the minimum and maximum of ${s.bucket} samples`) +
    (p.runs.length ? `; the label track (${s.labels!.name}) is painted behind the line and listed in the table below` : '');
  return (
    <figure class="ds-channel">
      <figcaption>{ch.name}</figcaption>
      <Chart options={options} data={data} label={text} height={130} />
    </figure>
  );
}

/** Facts of one session, from its series. */
function SessionFacts({ s, p }: { s: SessionSeries; p: Prepared }) {
  const absolute = s.timeUnit === 'iso' || s.start > 1e8;
  return (
    <dl class="ds-facts">
      <div><dt>Subject</dt><dd>{s.subject}</dd></div>
      <div><dt>Session</dt><dd>{s.session || '(one per subject)'}</dd></div>
      <div><dt>Samples</dt><dd>{short(s.samples)}</dd></div>
      <div><dt>Length</dt><dd>{s.bucket > 1 ? '≈ ' : ''}{fmtDuration(p.duration)}</dd></div>
      <div><dt>Rate</dt><dd>{Number.isFinite(p.rate) ? `${short(p.rate)} Hz` : '–'}</dd></div>
      <div><dt>Gaps</dt><dd>{p.gaps ? short(p.gaps) : 'none'}</dd></div>
      <div><dt>Starts</dt><dd>{absolute ? fmtDate(s.start * 1000) : `t = ${short(s.start)} s`}</dd></div>
      <div><dt>Shown</dt><dd>{s.bucket > 1 ? `${short(s.seconds.length)} buckets of ${s.bucket} samples` : 'every sample'}</dd></div>
    </dl>
  );
}

/** The session picker: names from the sequence profile when there is one, else numbers (and names as they are seen). */
function SessionPicker({ index, count, names, onPick }: { index: number; count: number; names: Map<number, string>; onPick: (i: number) => void }) {
  return (
    <div class="ds-session-picker">
      <Field label="Session">
        {(id) =>
          count > 300 ? (
            <input id={id} type="number" min={1} max={count} value={index + 1} onChange={(e) => {
              const v = Math.round(Number(e.currentTarget.value));
              if (v >= 1 && v <= count) onPick(v - 1);
            }} />
          ) : (
            <select id={id} value={String(index)} onChange={(e) => onPick(Number(e.currentTarget.value))}>
              {Array.from({ length: count }, (_, i) => (
                <option key={i} value={String(i)}>
                  {i + 1} of {count}
                  {names.get(i) ? ` — ${names.get(i)}` : ''}
                </option>
              ))}
            </select>
          )
        }
      </Field>
      <div class="actions">
        <Button disabled={index <= 0} onClick={() => onPick(index - 1)}>
          ‹ Previous
        </Button>
        <Button disabled={index >= count - 1} onClick={() => onPick(index + 1)}>
          Next ›
        </Button>
      </div>
    </div>
  );
}

/** One session's channels over time, with the picker, the session's facts and the label track. */
function SessionPlot({ id, index, seq }: { id: string; index: number; seq: SequenceProfile | undefined }) {
  const res = useApi<SessionSeries>(`${path('/v1/datasets', id, 'series')}?session=${index}&points=${POINTS}`);
  const [count, setCount] = useState<number>(seq?.sessions.length ?? 0);
  const [names, setNames] = useState<Map<number, string>>(() => new Map(seq?.sessions.map((s, i) => [i, `${s.subject} / ${s.session}`]) ?? []));
  const [hidden, setHidden] = useState<Set<string>>(new Set());
  const s = res.data;
  useEffect(() => {
    if (!s) return;
    setCount(s.sessions);
    setNames((m) => (m.has(s.index) ? m : new Map(m).set(s.index, s.session ? `${s.subject} / ${s.session}` : s.subject)));
  }, [s]);
  const p = useMemo(() => (s ? prepare(s) : null), [s]);
  const pick = (i: number) => setQuery('session', i === 0 ? null : String(i + 1));
  const syncKey = `ds-${id}`;
  return (
    <Card title="One session over time" id="session-plot">
      {count > 1 || index > 0 ? <SessionPicker index={index} count={Math.max(count, index + 1)} names={names} onPick={pick} /> : null}
      <Async res={res} what="the session">
        {(s) => {
          const q = p!;
          return (
            <div>
              <SessionFacts s={s} p={q} />
              {s.channels.length > 1 ? (
                <fieldset class="ds-channels-shown">
                  <legend>Channels shown</legend>
                  {s.channels.map((c) => (
                    <label key={c.name} class="ds-check">
                      <input
                        type="checkbox"
                        checked={!hidden.has(c.name)}
                        onChange={(e) => {
                          const next = new Set(hidden);
                          if (e.currentTarget.checked) next.delete(c.name);
                          else next.add(c.name);
                          setHidden(next);
                        }}
                      />{' '}
                      {c.name}
                    </label>
                  ))}
                </fieldset>
              ) : null}
              {q.labels.length ? (
                <div class="ds-label-legend" aria-label={`Label track: ${s.labels!.name}`} role="group">
                  <span class="muted">{s.labels!.name}:</span>
                  {q.labels.map((l) => (
                    <span key={l.label} class="ds-label-chip">
                      <span class="ds-swatch" style={{ background: l.fill }} aria-hidden="true" /> {l.label} <span class="muted">{fmtDuration(l.seconds)}</span>
                    </span>
                  ))}
                </div>
              ) : null}
              {s.channels.length === 0 ? <Empty>This dataset has no numeric channels to plot.</Empty> : null}
              <div class="ds-channels">
                {s.channels.map((c, i) =>
                  hidden.has(c.name) ? null : <ChannelChart key={`${s.index}-${c.name}`} s={s} p={q} channel={i} colour={COLORS[i % COLORS.length]!} syncKey={syncKey} />,
                )}
              </div>
              <p class="hint">
                {s.bucket > 1 ? `Each point spans ${s.bucket} consecutive samples: the band runs from their smallest to their largest value. ` : ''}
                Hover a chart to read the values at that time on every channel.
              </p>
              {q.runs.length ? (
                <details class="ds-runs">
                  <summary>The label track as a table ({q.runs.length} stretch{q.runs.length === 1 ? '' : 'es'})</summary>
                  <TableWrap label="Label track">
                    <table>
                      <thead>
                        <tr>
                          <th scope="col" class="num">From</th>
                          <th scope="col" class="num">To</th>
                          <th scope="col" class="num">Length</th>
                          <th scope="col">{s.labels!.name}</th>
                        </tr>
                      </thead>
                      <tbody>
                        {q.runs.slice(0, 500).map((r, i) => (
                          <tr key={i}>
                            <td class="num">{fmtDuration(r.from)}</td>
                            <td class="num">{fmtDuration(r.to)}</td>
                            <td class="num">{fmtDuration(r.to - r.from)}</td>
                            <td>{r.label}</td>
                          </tr>
                        ))}
                      </tbody>
                    </table>
                  </TableWrap>
                  {q.runs.length > 500 ? <p class="hint">The first 500 stretches are listed.</p> : null}
                </details>
              ) : null}
            </div>
          );
        }}
      </Async>
    </Card>
  );
}

/** The sequence profile as served by the API: sessions, channels, labels covered. */
function SequenceOverview({ seq }: { seq: SequenceProfile }) {
  const [all, setAll] = useState(false);
  const sessions = all ? seq.sessions : seq.sessions.slice(0, 20);
  return (
    <>
      <dl class="ds-facts">
        <div><dt>Subjects</dt><dd>{short(seq.subjects)}</dd></div>
        <div><dt>Sessions</dt><dd>{short(seq.sessions.length)}</dd></div>
        <div><dt>Samples</dt><dd>{short(seq.rows)}</dd></div>
        <div><dt>Rate (median)</dt><dd>{seq.rate ? `${short(seq.rate)} Hz` : '–'}</dd></div>
        <div><dt>Gap that splits</dt><dd>{fmtDuration(seq.gapSeconds)}</dd></div>
        <div><dt>Channels</dt><dd>{short(seq.channels.length)}</dd></div>
      </dl>
      <h3>Sessions</h3>
      <TableWrap label="Sessions">
        <table>
          <thead>
            <tr>
              <th scope="col">Subject</th>
              <th scope="col">Session</th>
              <th scope="col" class="num">Samples</th>
              <th scope="col" class="num">Length</th>
              <th scope="col" class="num">Rate</th>
              <th scope="col" class="num">Gaps</th>
              <th scope="col" class="num">Longest step</th>
            </tr>
          </thead>
          <tbody>
            {sessions.map((s, i) => (
              <tr key={i}>
                <td>{s.subject}</td>
                <td>{s.session}</td>
                <td class="num">{short(s.samples)}</td>
                <td class="num">{fmtDuration(s.seconds)}</td>
                <td class="num">{s.rate ? `${short(s.rate)} Hz` : '–'}</td>
                <td class="num">{short(s.gaps)}</td>
                <td class="num">{fmtDuration(s.longestGap)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </TableWrap>
      {seq.sessions.length > 20 ? (
        <Button onClick={() => setAll(!all)} aria-expanded={all}>
          {all ? 'Show the first 20 sessions' : `Show all ${seq.sessions.length} sessions`}
        </Button>
      ) : null}
      <h3>Channels</h3>
      <TableWrap label="Channels">
        <table>
          <thead>
            <tr>
              <th scope="col">Channel</th>
              <th scope="col" class="num">Min</th>
              <th scope="col" class="num">Mean</th>
              <th scope="col" class="num">Max</th>
              <th scope="col" class="num">Std</th>
              <th scope="col" class="num">Missing</th>
            </tr>
          </thead>
          <tbody>
            {seq.channels.map((c) => (
              <tr key={c.name}>
                <th scope="row">{c.name}</th>
                <td class="num">{short(c.min)}</td>
                <td class="num">{short(c.mean)}</td>
                <td class="num">{short(c.max)}</td>
                <td class="num">{short(c.std)}</td>
                <td class="num">{c.missingPct ? `${c.missingPct.toFixed(1)}%` : '0%'}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </TableWrap>
      {seq.targets.map((t) =>
        t.kind === 'class' && t.labels ? (
          <div key={t.name}>
            <h3>Time covered per label of {t.name}</h3>
            <CategoryBars
              items={t.labels.map((l) => ({ label: `${l.label} · ${fmtDuration(l.seconds)}, ${short(l.bouts)} bout${l.bouts === 1 ? '' : 's'}`, count: l.samples }))}
              total={t.labels.reduce((a, b) => a + b.samples, 0)}
            />
            <p class="hint">Bars count samples; each label's time covered and number of bouts are beside its name.</p>
          </div>
        ) : (
          <p key={t.name}>
            <strong>{t.name}</strong>: from {short(t.min)} to {short(t.max)}, mean {short(t.mean)}.
          </p>
        ),
      )}
    </>
  );
}

/** Without the API's sequence profile: what the table profile says of subjects, sessions, channels and labels. */
function TableSensorOverview({ profile, cols }: { profile: TableProfile; cols: { subject: string; time: string; session: string | undefined } }) {
  const col = (n: string | undefined) => profile.columns.find((c) => c.name === n);
  const subject = col(cols.subject);
  const session = col(cols.session);
  const parts = new Set([cols.subject, cols.time, cols.session]);
  const channels = profile.columns.filter((c) => !parts.has(c.name) && (c.type === 'numeric' || c.type === 'integer'));
  // The label track's rule of the series API: a few-valued category that may not identify anyone.
  const label = profile.columns.find((c) => !parts.has(c.name) && (c.type === 'categorical' || c.type === 'boolean') && !c.identifier && !c.distinctApprox && c.distinct <= MAX_LABELS);
  const present = label ? profile.rows - label.missing : 0;
  return (
    <>
      <dl class="ds-facts">
        <div><dt>Subjects</dt><dd>{short(subject?.distinct)}</dd></div>
        <div><dt>Sessions</dt><dd>{session ? `${session.distinctApprox ? '≈' : ''}${short(session.distinct)}` : short(subject?.distinct)}</dd></div>
        <div><dt>Samples</dt><dd>{short(profile.rows)}</dd></div>
        <div><dt>Time column</dt><dd><code>{cols.time}</code></dd></div>
        <div><dt>Numeric columns</dt><dd>{short(channels.length)}</dd></div>
      </dl>
      {channels.length ? (
        <p class="hint">
          Numeric columns: {channels.map((c) => c.name).join(', ')}. Their ranges and histograms are in the columns below; the session plotted below gives its length, rate and gaps.
        </p>
      ) : null}
      {label && label.top ? (
        <div>
          <h3>Samples per label of {label.name}</h3>
          <CategoryBars items={label.top.map((t) => ({ label: String(t.value), count: t.count }))} total={present} />
        </div>
      ) : null}
    </>
  );
}

/**
 * The sensor section of a dataset page: overview and one session plotted. The plot shows the
 * samples themselves (record-level data), which the API gives only to keys with the train scope,
 * the data owner's: other keys get the overview and a note saying so.
 */
export function SensorSection({ id, profile, seq, sessionIndex, canPlot }: { id: string; profile: TableProfile; seq: SequenceProfile | undefined; sessionIndex: number; canPlot: boolean }) {
  const cols = sensorColumns(profile.columns.map((c) => c.name));
  if (!cols) return null;
  return (
    <>
      <Card title="Sensor sessions" id="sensor">
        {seq ? <SequenceOverview seq={seq} /> : <TableSensorOverview profile={profile} cols={cols} />}
      </Card>
      {canPlot ? (
        <SessionPlot id={id} index={sessionIndex} seq={seq} />
      ) : (
        <Card title="One session over time" id="session-plot">
          <p class="hint ds-plot-scope">Plotting a session's samples needs a key with the train scope: the plot shows the recorded values themselves. The overview above and the columns below summarise the whole dataset.</p>
        </Card>
      )}
    </>
  );
}
