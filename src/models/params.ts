import { MedfitError } from '../core/index.js';
import type { Params } from './types.js';

/** How one hyperparameter is typed and bounded. */
export type ParamSpec =
  | { type: 'int'; min: number; max: number; help: string }
  | { type: 'float'; min: number; max: number; help: string; exclusiveMin?: boolean }
  | { type: 'bool'; help: string }
  | { type: 'enum'; values: readonly string[]; help: string }
  | { type: 'intList'; min: number; max: number; maxLength: number; help: string };

/**
 * One searched dimension of a family's hyperparameters: a float or integer range (sampled on a log
 * scale when `log`, for parameters whose effect is multiplicative, as a learning rate or a penalty)
 * or a choice among values (a hidden-layer list is one value). The AutoML search (src/automl)
 * samples these; every sampled value lies within the parameter's `ParamSpec`.
 */
export type SearchDim =
  | { type: 'float'; low: number; high: number; log?: boolean }
  | { type: 'int'; low: number; high: number; log?: boolean }
  | { type: 'choice'; values: readonly (number | string | boolean | readonly number[])[] };

/**
 * Below this many training rows a table is small: searches draw from narrower, more regularised
 * ranges (`ModelFamily.searchSpace`) and the AutoML search tries fewer candidates, so it does not
 * overfit its own cross-validation.
 */
export const SMALL_TABLE_ROWS = 300;

/** The hyperparameters a search varies, by name; the rest keep the family's defaults. */
export type SearchSpace = Readonly<Record<string, SearchDim>>;

/**
 * Validates `raw` (strings from the CLI or JSON values from the API) against `spec`, over
 * `defaults`. Every problem is reported at once, naming `family.key`, the accepted range and
 * what was given, so a user fixes the whole call in one go.
 */
export function parseParams(
  family: string,
  spec: Record<string, ParamSpec>,
  defaults: Params,
  raw: Record<string, unknown>,
): Params {
  const out: Params = { ...defaults };
  const problems: { pointer: string; message: string }[] = [];
  for (const [key, value] of Object.entries(raw)) {
    const s = Object.hasOwn(spec, key) ? spec[key] : undefined;
    const pointer = `${family}.${key}`;
    if (!s) {
      problems.push({ pointer, message: `unknown parameter (known: ${Object.keys(spec).join(', ')})` });
      continue;
    }
    const r = coerce(s, value);
    if (typeof r === 'string') problems.push({ pointer, message: r });
    else out[key] = r.value;
  }
  if (problems.length > 0) {
    throw new MedfitError('MEDFIT_ERR_BAD_PARAM', problems.map((p) => `parameter ${p.pointer}: ${p.message}`).join('; '), problems);
  }
  return out;
}

function coerce(s: ParamSpec, value: unknown): { value: Params[string] } | string {
  switch (s.type) {
    case 'int':
    case 'float': {
      const n = typeof value === 'number' ? value : typeof value === 'string' && value.trim() !== '' ? Number(value) : NaN;
      if (!Number.isFinite(n)) return `expected a number (${s.help})`;
      if (s.type === 'int' && !Number.isInteger(n)) return `expected an integer (${s.help})`;
      const low = s.type === 'float' && s.exclusiveMin ? n <= s.min : n < s.min;
      if (low || n > s.max) return `must be in ${s.type === 'float' && s.exclusiveMin ? '(' : '['}${s.min}, ${s.max}] (${s.help})`;
      return { value: n };
    }
    case 'bool':
      if (value === true || value === 'true' || value === '1') return { value: true };
      if (value === false || value === 'false' || value === '0') return { value: false };
      return `expected true or false (${s.help})`;
    case 'enum':
      if (typeof value === 'string' && s.values.includes(value)) return { value };
      return `expected one of ${s.values.join(', ')}`;
    case 'intList': {
      const items = Array.isArray(value)
        ? value
        : typeof value === 'string'
          ? value.split(',').map((v) => (v.trim() === '' ? NaN : Number(v)))
          : typeof value === 'number'
            ? [value]
            : [];
      if (items.length === 0 || items.length > s.maxLength) return `expected 1 to ${s.maxLength} comma-separated integers (${s.help})`;
      for (const v of items) {
        if (typeof v !== 'number' || !Number.isInteger(v) || v < s.min || v > s.max)
          return `each value must be an integer in [${s.min}, ${s.max}] (${s.help})`;
      }
      return { value: items as number[] };
    }
  }
}
