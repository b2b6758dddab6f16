import { describe, expect, it } from 'vitest';
import { MedfitError } from '../core/index.js';
import { tableFromRows, type Table } from '../data/index.js';
import { detectRate, detectTimeUnit, readSessions, readSessionsFor } from './sessions.js';
import { profileSequence } from './profile.js';

const cols = ['subject', 'session', 't', 'ax', 'hr', 'activity'];

function tbl(rows: (string | number | null)[][], columns = cols): Table {
  return tableFromRows(columns, rows, { source: 'walk.csv', format: 'csv', lines: rows.map((_, i) => i + 2) });
}

function error(f: () => unknown): MedfitError {
  try {
    f();
  } catch (e) {
    if (e instanceof MedfitError) return e;
    throw e;
  }
  throw new Error('expected an error');
}

describe('readSessions', () => {
  it('groups rows by subject and session, reads channels and labels, in seconds', () => {
    const t = tbl([
      ['a', '1', 0, 1, 60, 'walk'],
      ['b', '1', 0, 5, 70, 'run'],
      ['a', '1', 20, 2, 61, 'walk'],
      ['a', '2', 0, 3, null, 'run'],
      ['a', '2', 20, 4, 62, 'run'],
    ]);
    const d = readSessions(t, { subject: 'subject', session: 'session', time: 't', targets: ['activity'] });
    expect(d.channels).toEqual(['ax', 'hr']);
    expect(d.targets).toEqual([{ name: 'activity', kind: 'class', classes: ['run', 'walk'] }]);
    expect(d.timeUnit).toBe('ms');
    expect(d.sessions.map((s) => [s.subject, s.session, s.t.length])).toEqual([
      ['a', '1', 2],
      ['b', '1', 1],
      ['a', '2', 2],
    ]);
    expect(Array.from(d.sessions[0]!.t)).toEqual([0, 0.02]);
    expect(Array.from(d.sessions[2]!.channels[1]!)).toEqual([NaN, 62]);
    expect(Array.from(d.sessions[0]!.targets[0]!)).toEqual([1, 1]);
    expect(d.sessions[1]!.line).toBe(3);
  });

  it('detects ISO times, epoch seconds and milliseconds, relative seconds', () => {
    const iso = tbl([['a', '1', '2026-01-01T00:00:00Z', 1, 1, 'x'], ['a', '1', '2026-01-01T00:00:00.5Z', 1, 1, 'x']]);
    expect(detectTimeUnit(iso, 2)).toBe('iso');
    expect(readSessions(iso, { subject: 'subject', time: 't', targets: [] }).sessions[0]!.t[1]! - 1767225600).toBeCloseTo(0.5, 9);
    const at = (v: number[]) => detectTimeUnit(tbl(v.map((x) => ['a', '1', x, 1, 1, 'x'])), 2);
    expect(at([1767225600000, 1767225600020])).toBe('ms');
    expect(at([1767225600, 1767225601])).toBe('s');
    expect(at([0, 0.02, 0.04])).toBe('s');
    expect(at([0, 1, 2])).toBe('s');
    expect(at([0, 100, 200])).toBe('ms');
  });

  it('folds repeated timestamps into the first and warns; refuses time going backwards, naming the line', () => {
    const d = readSessions(tbl([['a', '1', 0, 1, 1, 'x'], ['a', '1', 0, 2, 1, 'x'], ['a', '1', 20, 3, 1, 'x']]), { subject: 'subject', session: 'session', time: 't', targets: [] });
    expect(Array.from(d.sessions[0]!.channels[0]!)).toEqual([1, 3]);
    expect(d.warnings.map((w) => w.code)).toEqual(['duplicate_timestamps']);
    const e = error(() => readSessions(tbl([['a', '1', 40, 1, 1, 'x'], ['a', '1', 20, 2, 1, 'x']]), { subject: 'subject', time: 't', targets: [] }));
    expect(e.code).toBe('MEDFIT_ERR_BAD_DATA');
    expect(e.message).toContain('walk.csv:3');
    expect(e.message).toContain('backwards');
  });

  it('names a missing column, an all-missing channel, a missing time, an unknown label', () => {
    const t = tbl([['a', '1', 0, null, 1, 'x'], ['a', '1', 20, null, 2, 'y']]);
    expect(error(() => readSessions(t, { subject: 'who', time: 't', targets: [] })).message).toContain('no column "who"');
    expect(error(() => readSessions(t, { subject: 'subject', time: 't', targets: [], channels: ['ax'] })).message).toContain('column "ax": has no numeric value');
    const noTime = tbl([['a', '1', null, 1, 1, 'x']]);
    expect(error(() => readSessions(noTime, { subject: 'subject', time: 't', targets: [] })).message).toMatch(/walk\.csv:2: column "t": missing/);
    const known = [{ name: 'activity', kind: 'class' as const, classes: ['x'] }];
    const e = error(() => readSessions(t, { subject: 'subject', time: 't', targets: ['activity'], channels: ['hr'] }, { knownTargets: known }));
    expect(e.message).toContain('walk.csv:3');
    expect(e.message).not.toContain('"y"');
  });

  it('leaves label-like numeric columns out of the default channels, with a warning', () => {
    const t = tableFromRows(['subject', 't', 'ax', 'energy', 'activity'], [['a', 0, 1, 2.5, 'walk'], ['a', 20, 2, 2.6, 'walk']], { source: 'x.csv' });
    const d = readSessions(t, { subject: 'subject', time: 't', targets: ['activity'] });
    expect(d.channels).toEqual(['ax']);
    expect(d.warnings.find((w) => w.code === 'label_columns_left_out')!.message).toContain('energy');
    expect(readSessions(t, { subject: 'subject', time: 't', targets: ['activity'], channels: ['ax', 'energy'] }).channels).toEqual(['ax', 'energy']);
  });

  it('reads numeric labels as classes when asked', () => {
    const t = tbl([['a', '1', 0, 1, 1, 2], ['a', '1', 20, 1, 1, 10]]);
    expect(readSessions(t, { subject: 'subject', time: 't', targets: ['activity'] }).targets[0]!.kind).toBe('value');
    expect(readSessions(t, { subject: 'subject', time: 't', targets: ['activity'] }, { labels: true }).targets[0]).toEqual({ name: 'activity', kind: 'class', classes: ['10', '2'] });
  });

  it('readSessionsFor fills missing channels and ignores extra ones, with warnings', () => {
    const t = tableFromRows(['subject', 't', 'ax', 'temp'], [['a', 0, 1, 30], ['a', 20, 2, 31]], { source: 'x.csv' });
    const d = readSessionsFor(t, { subject: 'subject', time: 't' }, ['ax', 'gx'], 'ms');
    expect(d.channels).toEqual(['ax', 'gx']);
    expect(Array.from(d.sessions[0]!.channels[1]!)).toEqual([NaN, NaN]);
    expect(d.warnings.map((w) => w.code).sort()).toEqual(['extra_channels', 'missing_channels']);
    expect(() => readSessionsFor(t, { subject: 'subject', time: 't' }, ['gx'], 'ms')).toThrow(/none of the model's channels/);
  });

  it('detectRate rounds the median interval; the profile reports rate, gaps and label durations', () => {
    const rows: (string | number)[][] = [];
    for (let i = 0; i < 100; i++) rows.push(['a', '1', i * 20 + (i % 10 === 9 ? 1 : 0), 1, 1, i < 50 ? 'walk' : 'run']);
    for (let i = 0; i < 10; i++) rows.push(['a', '1', 10_000 + i * 20, 1, 1, 'run']);
    const d = readSessions(tbl(rows), { subject: 'subject', session: 'session', time: 't', targets: ['activity'] });
    expect(detectRate(d.sessions)).toBe(50);
    const p = profileSequence(d);
    expect(p.sessions[0]).toMatchObject({ samples: 110, gaps: 1 });
    expect(p.targets[0]!.labels!.find((l) => l.label === 'walk')).toMatchObject({ samples: 50, bouts: 1 });
    expect(p.warnings.map((w) => w.code)).toContain('gaps');
  });
});
