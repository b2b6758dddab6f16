/**
 * UCUM units (https://ucum.org/ucum, the case-sensitive form FHIR uses) for the values of
 * Observations: a parser for the part of the grammar clinical data uses, and conversion between
 * commensurable units, plus the two conversions that are not pure unit arithmetic and that lab
 * data needs: mass ↔ substance concentration by an analyte's molar mass (mg/dL ↔ mmol/L) and
 * HbA1c between NGSP % and IFCC mmol/mol.
 *
 * Hand-written rather than `@lhncbc/ucum-lhc`: the subset below is small, loads in no time, and
 * every conversion is cached per (code, from, to), so the hot path is one Map lookup and a
 * multiplication.
 *
 * What the grammar covers: prefixes (`m`, `u`, `k`, `d`, `Ki`, …) on metric atoms, atoms in and out
 * of brackets (`[in_i]`, `[lb_av]`, `mm[Hg]`, `[iU]`), `.` and `/` (left to right, as UCUM reads
 * them), a leading `/` (`/min`), integer exponents (`m2`, `s-1`, `10*3`), parentheses, the numbers
 * `10`, `1000`, annotations `{beats}` (unity on their own, ignored after a unit) and `%`. Left out:
 * the non-linear special units (`[pH]`, `B`, `Np`, …) and the rare atoms; they are reported as not
 * understood. The offset units `Cel` and `[degF]` are understood standing alone (as UCUM requires).
 *
 * One deliberate departure: UCUM defines `mol` as the dimensionless number 6.0221367 × 10²³.
 * Here substance is a dimension of its own, so a count per volume (`10*3/uL`) never silently
 * becomes a molar concentration, and mass ↔ substance happens only through a known molar mass.
 */
import { Errors } from '../core/index.js';

/** The UCUM code system URI (a Quantity's `system` when its `code` is a UCUM unit). */
export const UCUM_SYSTEM = 'http://unitsofmeasure.org';

/** A unit reduced to a factor on base units (m, s, g, rad, K, C, cd, mol; arbitrary units by name). */
interface Reduced {
  factor: number;
  /** Base dimension → exponent, zero exponents absent. */
  dims: Record<string, number>;
  /** An offset unit standing alone: value in K = (v + offset) × factor. */
  offset?: number;
  /** The unit mentions a substance atom (mol, eq, osm, kat, U): tells mmol/mol from % for HbA1c. */
  substance: boolean;
}

interface Atom {
  factor: number;
  dims: Record<string, number>;
  /** Takes prefixes. */
  metric: boolean;
  offset?: number;
}

const PREFIXES: Record<string, number> = {
  Y: 1e24, Z: 1e21, E: 1e18, P: 1e15, T: 1e12, G: 1e9, M: 1e6, k: 1e3, h: 1e2, da: 1e1,
  d: 1e-1, c: 1e-2, m: 1e-3, u: 1e-6, n: 1e-9, p: 1e-12, f: 1e-15, a: 1e-18, z: 1e-21, y: 1e-24,
  Ki: 1024, Mi: 1024 ** 2, Gi: 1024 ** 3, Ti: 1024 ** 4,
};

const MASS_PRESSURE = { g: 1, m: -1, s: -2 };
const ENERGY = { g: 1, m: 2, s: -2 };
const DAY = 86400;
const YEAR_J = 365.25 * DAY;
const YEAR_G = 365.2425 * DAY;
const GALLON_US = 231 * 0.0254 ** 3;

/** Atoms, their values from the UCUM table (ucum-essence.xml), in grams (UCUM's base of mass). */
const ATOMS: Record<string, Atom> = {
  // base units
  m: { factor: 1, dims: { m: 1 }, metric: true },
  s: { factor: 1, dims: { s: 1 }, metric: true },
  g: { factor: 1, dims: { g: 1 }, metric: true },
  rad: { factor: 1, dims: { rad: 1 }, metric: true },
  K: { factor: 1, dims: { K: 1 }, metric: true },
  C: { factor: 1, dims: { C: 1 }, metric: true },
  cd: { factor: 1, dims: { cd: 1 }, metric: true },
  mol: { factor: 1, dims: { mol: 1 }, metric: true },
  // numbers and fractions
  '10*': { factor: 10, dims: {}, metric: false },
  '10^': { factor: 10, dims: {}, metric: false },
  '%': { factor: 1e-2, dims: {}, metric: false },
  '[ppth]': { factor: 1e-3, dims: {}, metric: false },
  '[ppm]': { factor: 1e-6, dims: {}, metric: false },
  '[ppb]': { factor: 1e-9, dims: {}, metric: false },
  '[pptr]': { factor: 1e-12, dims: {}, metric: false },
  '[HPF]': { factor: 1, dims: {}, metric: false },
  '[LPF]': { factor: 100, dims: {}, metric: false },
  // time
  min: { factor: 60, dims: { s: 1 }, metric: false },
  h: { factor: 3600, dims: { s: 1 }, metric: false },
  d: { factor: DAY, dims: { s: 1 }, metric: false },
  wk: { factor: 7 * DAY, dims: { s: 1 }, metric: false },
  a: { factor: YEAR_J, dims: { s: 1 }, metric: false },
  a_j: { factor: YEAR_J, dims: { s: 1 }, metric: false },
  a_g: { factor: YEAR_G, dims: { s: 1 }, metric: false },
  a_t: { factor: 365.24219 * DAY, dims: { s: 1 }, metric: false },
  mo: { factor: YEAR_J / 12, dims: { s: 1 }, metric: false },
  mo_j: { factor: YEAR_J / 12, dims: { s: 1 }, metric: false },
  mo_g: { factor: YEAR_G / 12, dims: { s: 1 }, metric: false },
  mo_s: { factor: 29.53059 * DAY, dims: { s: 1 }, metric: false },
  Hz: { factor: 1, dims: { s: -1 }, metric: true },
  // volume, area
  L: { factor: 1e-3, dims: { m: 3 }, metric: true },
  l: { factor: 1e-3, dims: { m: 3 }, metric: true },
  ar: { factor: 100, dims: { m: 2 }, metric: true },
  sr: { factor: 1, dims: { rad: 2 }, metric: true },
  // mechanics (kg = 1000 g)
  N: { factor: 1000, dims: { g: 1, m: 1, s: -2 }, metric: true },
  Pa: { factor: 1000, dims: MASS_PRESSURE, metric: true },
  bar: { factor: 1e8, dims: MASS_PRESSURE, metric: true },
  atm: { factor: 101325e3, dims: MASS_PRESSURE, metric: false },
  'm[Hg]': { factor: 133.322e6, dims: MASS_PRESSURE, metric: true },
  'm[H2O]': { factor: 9.80665e6, dims: MASS_PRESSURE, metric: true },
  "[in_i'Hg]": { factor: 133.322e6 * 0.0254, dims: MASS_PRESSURE, metric: false },
  "[in_i'H2O]": { factor: 9.80665e6 * 0.0254, dims: MASS_PRESSURE, metric: false },
  J: { factor: 1000, dims: ENERGY, metric: true },
  W: { factor: 1000, dims: { g: 1, m: 2, s: -3 }, metric: true },
  cal: { factor: 4184, dims: ENERGY, metric: true },
  cal_th: { factor: 4184, dims: ENERGY, metric: true },
  '[Cal]': { factor: 4184e3, dims: ENERGY, metric: false },
  Gy: { factor: 1, dims: { m: 2, s: -2 }, metric: true },
  Sv: { factor: 1, dims: { m: 2, s: -2 }, metric: true },
  Bq: { factor: 1, dims: { s: -1 }, metric: true },
  Ci: { factor: 3.7e10, dims: { s: -1 }, metric: true },
  // electricity
  A: { factor: 1, dims: { C: 1, s: -1 }, metric: true },
  V: { factor: 1000, dims: { g: 1, m: 2, s: -2, C: -1 }, metric: true },
  Ohm: { factor: 1000, dims: { g: 1, m: 2, s: -1, C: -2 }, metric: true },
  S: { factor: 1e-3, dims: { g: -1, m: -2, s: 1, C: 2 }, metric: true },
  mho: { factor: 1e-3, dims: { g: -1, m: -2, s: 1, C: 2 }, metric: true },
  F: { factor: 1e-3, dims: { g: -1, m: -2, s: 2, C: 2 }, metric: true },
  // mass
  t: { factor: 1e6, dims: { g: 1 }, metric: true },
  '[lb_av]': { factor: 453.59237, dims: { g: 1 }, metric: false },
  '[oz_av]': { factor: 453.59237 / 16, dims: { g: 1 }, metric: false },
  '[st_av]': { factor: 14 * 453.59237, dims: { g: 1 }, metric: false },
  '[gr]': { factor: 0.06479891, dims: { g: 1 }, metric: false },
  'g%': { factor: 1e4, dims: { g: 1, m: -3 }, metric: true },
  // length
  '[in_i]': { factor: 0.0254, dims: { m: 1 }, metric: false },
  '[ft_i]': { factor: 0.3048, dims: { m: 1 }, metric: false },
  '[yd_i]': { factor: 0.9144, dims: { m: 1 }, metric: false },
  '[mi_i]': { factor: 1609.344, dims: { m: 1 }, metric: false },
  Ao: { factor: 1e-10, dims: { m: 1 }, metric: false },
  // US volumes
  '[gal_us]': { factor: GALLON_US, dims: { m: 3 }, metric: false },
  '[qt_us]': { factor: GALLON_US / 4, dims: { m: 3 }, metric: false },
  '[pt_us]': { factor: GALLON_US / 8, dims: { m: 3 }, metric: false },
  '[cup_us]': { factor: GALLON_US / 16, dims: { m: 3 }, metric: false },
  '[foz_us]': { factor: GALLON_US / 128, dims: { m: 3 }, metric: false },
  '[tbs_us]': { factor: GALLON_US / 256, dims: { m: 3 }, metric: false },
  '[tsp_us]': { factor: GALLON_US / 768, dims: { m: 3 }, metric: false },
  '[drp]': { factor: 1e-3 / 20 / 1000, dims: { m: 3 }, metric: false },
  // angle, temperature
  deg: { factor: Math.PI / 180, dims: { rad: 1 }, metric: false },
  Cel: { factor: 1, dims: { K: 1 }, metric: true, offset: 273.15 },
  '[degF]': { factor: 5 / 9, dims: { K: 1 }, metric: false, offset: 459.67 },
  '[degR]': { factor: 5 / 9, dims: { K: 1 }, metric: false },
  // substance (see the module comment: a dimension of its own here)
  eq: { factor: 1, dims: { mol: 1 }, metric: true },
  osm: { factor: 1, dims: { mol: 1 }, metric: true },
  kat: { factor: 1, dims: { mol: 1, s: -1 }, metric: true },
  U: { factor: 1e-6 / 60, dims: { mol: 1, s: -1 }, metric: true },
  // arbitrary units: commensurable only with themselves (prefixed)
  '[iU]': { factor: 1, dims: { '[iU]': 1 }, metric: true },
  '[IU]': { factor: 1, dims: { '[iU]': 1 }, metric: true },
  "[arb'U]": { factor: 1, dims: { "[arb'U]": 1 }, metric: true },
  '[CFU]': { factor: 1, dims: { '[CFU]': 1 }, metric: true },
};

const SUBSTANCE_ATOMS = new Set(['mol', 'eq', 'osm', 'kat', 'U']);

/** Longest unit string looked at: real units are short, and this bounds the parser's work. */
const MAX_UNIT_LENGTH = 120;
const MAX_DEPTH = 16;

/** A parse failure; turned into a message by the callers. */
class UnitError extends Error {}

/** The most characters of a unit a message quotes. */
const MAX_QUOTED_UNIT = 32;

/**
 * Whether a message may quote `unit`: at most 32 characters, each one that units are written
 * with (letters, digits, space and `._/%[]{}()*^+-'`; the apostrophe is UCUM's, `[arb'U]`). A
 * unit comes from the data (`Quantity.unit`) and may be anything, a megabyte of it or a patient's
 * name: anything else is described, never quoted.
 */
export function isQuotableUnit(unit: string): boolean {
  if (unit.length > MAX_QUOTED_UNIT) return false;
  for (let i = 0; i < unit.length; i++) {
    const c = unit.charCodeAt(i);
    const ok = (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || ' ._/%[]{}()*^+-\''.includes(unit[i]!);
    if (!ok) return false;
  }
  return true;
}

/** `"mg/dL"` when quotable; else `a unit that is not UCUM`, or `a UCUM unit not quoted here` when it is one. */
export function quoteUnit(unit: string): string {
  if (isQuotableUnit(unit)) return `"${unit}"`;
  return typeof reduce(unit) === 'string' ? 'a unit that is not UCUM' : 'a UCUM unit not quoted here';
}

/** Recursive descent over the UCUM term grammar; linear in the unit's length. */
class Parser {
  private i = 0;
  private depth = 0;
  /** Components seen, to refuse offset units in products. */
  components = 0;
  offset: number | undefined;
  offsetFactor = 1;
  substance = false;

  constructor(private readonly s: string) {}

  parse(): Reduced {
    if (this.s.length === 0) throw new UnitError('is empty');
    if (this.s.length > MAX_UNIT_LENGTH) throw new UnitError(`is longer than ${MAX_UNIT_LENGTH} characters`);
    const r = this.term();
    if (this.i < this.s.length) {
      const ch = this.s[this.i]!;
      throw new UnitError(`has an unexpected ${isQuotableUnit(ch) ? `"${ch}"` : 'character'} at character ${this.i + 1}`);
    }
    if (this.offset !== undefined) {
      if (this.components !== 1) throw new UnitError('uses an offset unit (Cel, [degF]) inside a product or quotient');
      return { factor: this.offsetFactor, dims: { K: 1 }, offset: this.offset, substance: false };
    }
    return { ...r, substance: this.substance };
  }

  private term(): { factor: number; dims: Record<string, number> } {
    if (++this.depth > MAX_DEPTH) throw new UnitError('nests parentheses too deeply');
    let acc: { factor: number; dims: Record<string, number> };
    if (this.s[this.i] === '/') {
      this.i++;
      acc = power(this.component(), -1);
      this.components++;
    } else acc = this.component();
    for (;;) {
      const c = this.s[this.i];
      if (c === '.') {
        this.i++;
        acc = multiply(acc, this.component());
        this.components++;
      } else if (c === '/') {
        this.i++;
        acc = multiply(acc, power(this.component(), -1));
        this.components++;
      } else break;
    }
    this.depth--;
    return acc;
  }

  private component(): { factor: number; dims: Record<string, number> } {
    const c = this.s[this.i];
    if (c === '(') {
      this.i++;
      const t = this.term();
      if (this.s[this.i] !== ')') throw new UnitError('has an unclosed parenthesis');
      this.i++;
      this.components++;
      this.annotation();
      return t;
    }
    if (c === '{') {
      this.annotation();
      return { factor: 1, dims: {} };
    }
    const start = this.i;
    // A symbol runs to the next operator; a bracketed part ([in_i], [H2O]) is taken whole.
    while (this.i < this.s.length) {
      const ch = this.s[this.i]!;
      if (ch === '[') {
        const close = this.s.indexOf(']', this.i);
        if (close < 0) throw new UnitError('has an unclosed bracket');
        this.i = close + 1;
        continue;
      }
      if (ch === '.' || ch === '/' || ch === '(' || ch === ')' || ch === '{' || ch === '}' || ch === ']') break;
      const code = ch.charCodeAt(0);
      if (code <= 32 || code >= 127) throw new UnitError(`has a character UCUM does not allow at character ${this.i + 1}`);
      this.i++;
    }
    if (this.i === start) throw new UnitError(`expects a unit at character ${start + 1}`);
    const r = this.simple(this.s.slice(start, this.i));
    this.annotation();
    this.components++;
    return r;
  }

  /** An annotation `{…}`: no meaning in arithmetic. */
  private annotation(): void {
    if (this.s[this.i] !== '{') return;
    const close = this.s.indexOf('}', this.i);
    if (close < 0) throw new UnitError('has an unclosed annotation');
    for (let k = this.i + 1; k < close; k++) {
      const code = this.s.charCodeAt(k);
      if (code < 32 || code >= 127 || code === 123) throw new UnitError('has a character UCUM does not allow in an annotation');
    }
    this.i = close + 1;
  }

  /** `prefix? atom exponent?`, or a plain positive integer. */
  private simple(tok: string): { factor: number; dims: Record<string, number> } {
    let end = tok.length;
    while (end > 0 && isDigit(tok.charCodeAt(end - 1))) end--;
    if (end === 0) return { factor: Number(tok), dims: {} };
    let exponent = 1;
    if (end < tok.length) {
      let signAt = end;
      if (tok[end - 1] === '+' || tok[end - 1] === '-') signAt = end - 1;
      if (signAt === 0) throw new UnitError(isQuotableUnit(tok) ? `has a malformed unit "${tok}"` : 'has a malformed unit');
      exponent = Number(tok.slice(signAt));
      end = signAt;
    }
    const name = tok.slice(0, end);
    let atom = ATOMS[name];
    let prefix = 1;
    let atomName = name;
    if (!atom) {
      for (const len of [2, 1]) {
        const p = PREFIXES[name.slice(0, len)];
        const a = ATOMS[name.slice(len)];
        if (p !== undefined && a?.metric) {
          atom = a;
          prefix = p;
          atomName = name.slice(len);
          break;
        }
      }
    }
    if (!atom) throw new UnitError(isQuotableUnit(name) ? `has a unit "${name}" that is not a UCUM unit understood here` : 'has a part that is not a UCUM unit understood here');
    if (SUBSTANCE_ATOMS.has(atomName)) this.substance = true;
    if (atom.offset !== undefined) {
      if (prefix !== 1 || exponent !== 1) throw new UnitError(`uses the offset unit ${atomName} with a prefix or an exponent`);
      this.offset = atom.offset;
      this.offsetFactor = atom.factor;
    }
    return power({ factor: prefix * atom.factor, dims: atom.dims }, exponent);
  }
}

function isDigit(c: number): boolean {
  return c >= 48 && c <= 57;
}

function multiply(a: { factor: number; dims: Record<string, number> }, b: { factor: number; dims: Record<string, number> }) {
  const dims = { ...a.dims };
  for (const k in b.dims) {
    const e = (dims[k] ?? 0) + b.dims[k]!;
    if (e === 0) delete dims[k];
    else dims[k] = e;
  }
  return { factor: a.factor * b.factor, dims };
}

function power(a: { factor: number; dims: Record<string, number> }, n: number) {
  if (n === 1) return a;
  const dims: Record<string, number> = {};
  for (const k in a.dims) dims[k] = a.dims[k]! * n;
  return { factor: a.factor ** n, dims };
}

const parsed = new Map<string, Reduced | string>();

/** The unit reduced, or why it is not understood (cached: units repeat). */
function reduce(unit: string): Reduced | string {
  // Not cached: 4096 units of a megabyte each (from the data) would be 4 GB of cache keys.
  if (unit.length > MAX_UNIT_LENGTH) return `is longer than ${MAX_UNIT_LENGTH} characters`;
  let r = parsed.get(unit);
  if (r === undefined) {
    try {
      r = new Parser(unit).parse();
    } catch (e) {
      if (!(e instanceof UnitError)) throw e;
      r = e.message;
    }
    if (parsed.size >= 4096) parsed.clear();
    parsed.set(unit, r);
  }
  return r;
}

/** Why `unit` is not a UCUM unit this parser understands (`is empty`, `has a unit "x" that …`), or undefined when it is. */
export function ucumProblem(unit: string): string | undefined {
  const r = reduce(unit);
  return typeof r === 'string' ? r : undefined;
}

/**
 * Molar masses (g/mol) of the analytes reported both as mass and as substance concentration,
 * by LOINC code (either code of a pair converts to the other's units):
 * - glucose C6H12O6 180.156 (PubChem CID 5793): 2345-7 serum/plasma, 2339-0 blood, 1558-6 fasting;
 * - cholesterol C27H46O 386.654 (PubChem CID 5997): total 2093-3, LDL 18262-6 / 13457-7, HDL 2085-9;
 * - triglycerides 885.7, by the convention of triolein (PubChem CID 5497163, 885.4) that the SI
 *   conversion tables use (mg/dL × 0.01129 = mmol/L; AMA Manual of Style, SI conversion table);
 * - creatinine C4H7N3O 113.12 (PubChem CID 588): 2160-0 serum/plasma, 38483-4 blood;
 * - urea nitrogen, counted as N2 (two nitrogen atoms per urea), 28.014: 3094-0 serum/plasma,
 *   6299-2 blood (mg/dL × 0.357 = mmol/L of urea).
 */
export const MOLAR_MASS: Readonly<Record<string, number>> = {
  '2345-7': 180.156,
  '2339-0': 180.156,
  '1558-6': 180.156,
  '2093-3': 386.654,
  '18262-6': 386.654,
  '13457-7': 386.654,
  '2085-9': 386.654,
  '2571-8': 885.7,
  '2160-0': 113.12,
  '38483-4': 113.12,
  '3094-0': 28.014,
  '6299-2': 28.014,
};

/**
 * HbA1c codes whose values may come as NGSP % or IFCC mmol/mol. The two are not a unit change but
 * the NGSP/IFCC master equation: NGSP % = 0.09148 × IFCC mmol/mol + 2.152 (Hoelzel W et al., Clin
 * Chem 2004;50:166–174; NGSP, "IFCC standardization of HbA1c", ngsp.org/ifccngsp.asp). Plain unit
 * arithmetic would turn 5.7 % into 57 mmol/mol, when it is 39.
 */
const HBA1C = new Set(['4548-4', '4549-2', '17856-6', '59261-8']);

const LOINC = 'http://loinc.org';

/** The LOINC code of a context code given as `system|code` or bare. */
function loincCode(code: string | undefined): string | undefined {
  if (code === undefined) return undefined;
  const bar = code.indexOf('|');
  if (bar < 0) return code;
  return code.slice(0, bar) === LOINC ? code.slice(bar + 1) : undefined;
}

/** A conversion of values from one unit to another. */
export type Converter = (value: number) => number;

const IDENTITY: Converter = (v) => v;

/**
 * `v` to 12 significant digits: a conversion's float noise (85.00000000000001, 98.59999999999997)
 * goes, and no measurement has 12 digits to lose.
 */
export function round12(v: number): number {
  return v === 0 || !Number.isFinite(v) ? v : Number(v.toPrecision(12));
}

function sameDims(a: Record<string, number>, b: Record<string, number>): boolean {
  let n = 0;
  for (const k in a) {
    if (b[k] !== a[k]) return false;
    n++;
  }
  for (const _ in b) n--;
  return n === 0;
}

/** `a − b` is `k·(g − mol)` for k = ±1 (mass in one where substance is in the other): k, else 0. */
function massSubstanceStep(a: Record<string, number>, b: Record<string, number>): number {
  for (const key in a) if (key !== 'g' && key !== 'mol' && b[key] !== a[key]) return 0;
  for (const key in b) if (key !== 'g' && key !== 'mol' && a[key] !== b[key]) return 0;
  const dg = (a.g ?? 0) - (b.g ?? 0);
  const dm = (a.mol ?? 0) - (b.mol ?? 0);
  return (dg === 1 || dg === -1) && dm === -dg ? dg : 0;
}

function makeConverter(from: string, to: string, code: string | undefined): Converter | undefined {
  if (from === to) return IDENTITY;
  const a = reduce(from);
  const b = reduce(to);
  if (typeof a === 'string' || typeof b === 'string') return undefined;
  if (a.offset !== undefined || b.offset !== undefined) {
    if (!sameDims(a.dims, b.dims)) return undefined;
    const ao = a.offset ?? 0;
    const bo = b.offset ?? 0;
    return (v) => ((v + ao) * a.factor) / b.factor - bo;
  }
  const loinc = loincCode(code);
  if (sameDims(a.dims, b.dims)) {
    if (loinc !== undefined && HBA1C.has(loinc) && a.substance !== b.substance && Object.keys(a.dims).length === 0) {
      // NGSP (a fraction, %) ↔ IFCC (a substance ratio, mmol/mol), by the master equation.
      if (!a.substance) return (v) => (((v * a.factor * 100 - 2.152) / 0.09148) * 1e-3) / b.factor;
      return (v) => ((0.09148 * (v * a.factor * 1e3) + 2.152) / 100) / b.factor;
    }
    const f = a.factor / b.factor;
    return f === 1 ? IDENTITY : (v) => v * f;
  }
  const molar = loinc !== undefined ? MOLAR_MASS[loinc] : undefined;
  if (molar !== undefined) {
    const k = massSubstanceStep(a.dims, b.dims);
    // k = 1: from is mass (g) where to is substance (mol): divide by g/mol.
    if (k !== 0) {
      const f = (a.factor / b.factor) * molar ** -k;
      return (v) => v * f;
    }
  }
  return undefined;
}

const converters = new Map<string, Converter | null>();

/**
 * A converter of values from unit `from` to unit `to` for Observations of `code` (`system|code` or
 * a bare LOINC code; it picks the molar mass or the HbA1c equation), or undefined when they are not
 * commensurable. Values it converts come rounded to 12 significant digits (`round12`); a value in
 * the unit itself comes back as it is. Cached: the builder asks once per distinct (code, from, to).
 */
export function unitConverter(from: string, to: string, code?: string): Converter | undefined {
  if (from === to) return IDENTITY;
  // Too long to be a unit (see `reduce`); never a cache key.
  if (from.length > MAX_UNIT_LENGTH || to.length > MAX_UNIT_LENGTH) return undefined;
  const key = `${code ?? ''}\u0001${from}\u0001${to}`;
  let c = converters.get(key);
  if (c === undefined) {
    const raw = makeConverter(from, to, code);
    c = raw === undefined ? null : raw === IDENTITY ? IDENTITY : (v: number) => round12(raw(v));
    if (converters.size >= 4096) converters.clear();
    converters.set(key, c);
  }
  return c ?? undefined;
}

/** Whether values of `code` in unit `from` can be converted to unit `to`. */
export function canConvert(from: string, to: string, code?: string): boolean {
  return unitConverter(from, to, code) !== undefined;
}

/** Where a value came from, for the message when its unit cannot be converted. */
export interface ConvertContext {
  /** The Observation's (or component's) `system|code`. */
  code?: string;
  source?: string;
  where?: string;
}

/**
 * `value` in unit `from`, expressed in unit `to` (to 12 significant digits). A unit that is not
 * understood or not commensurable is a bad-data error naming the source, the place, the code and
 * both units (quoted only when short and plain: see `isQuotableUnit`; the value is never named).
 */
export function convertUnit(value: number, from: string, to: string, context: ConvertContext = {}): number {
  const c = unitConverter(from, to, context.code);
  if (!c) throw unitError(from, to, context);
  return c(value);
}

/** The bad-data error for a value whose unit cannot be converted (shared with the feature builder). */
export function unitError(from: string, to: string, context: ConvertContext) {
  const where = [context.source, context.where].filter((s) => s !== undefined && s !== '').join(', ');
  const of = context.code !== undefined ? `a value of ${context.code}` : 'a value';
  const fromProblem = from === '' ? undefined : ucumProblem(from);
  const toProblem = ucumProblem(to);
  const fromQuoted = isQuotableUnit(from);
  const why =
    from === ''
      ? `has no unit, and the feature's unit is ${quoteUnit(to)}`
      : fromProblem !== undefined
        ? fromQuoted
          ? `has the unit "${from}", which ${fromProblem}`
          : `has a unit that is not UCUM (it ${fromProblem})`
        : toProblem !== undefined
          ? isQuotableUnit(to)
            ? `cannot be converted to "${to}", which ${toProblem}`
            : `cannot be converted to a unit that is not UCUM (it ${toProblem})`
          : `has ${fromQuoted ? `the unit "${from}"` : quoteUnit(from)}, which cannot be converted to ${quoteUnit(to)}`;
  return Errors.badData(where, `${of} ${why}`);
}

/**
 * Display units that are not UCUM but common in `Quantity.unit` when no UCUM `code` is given, and
 * their UCUM code. Only used for the display text; a UCUM code always wins.
 */
const DISPLAY_ALIASES: Record<string, string> = {
  mmHg: 'mm[Hg]',
  'mm Hg': 'mm[Hg]',
  bpm: '/min',
  'beats/min': '/min',
  lb: '[lb_av]',
  lbs: '[lb_av]',
  in: '[in_i]',
  inch: '[in_i]',
  ft: '[ft_i]',
  '°C': 'Cel',
  degC: 'Cel',
  '°F': '[degF]',
  degF: '[degF]',
  'kg/m^2': 'kg/m2',
  'kg/m²': 'kg/m2',
  'mg/dl': 'mg/dL',
  'g/dl': 'g/dL',
  'mmol/l': 'mmol/L',
  'mEq/L': 'meq/L',
};

/**
 * The unit of a Quantity as a UCUM code: its `code` when `system` is UCUM (the coded unit is the
 * one to trust), else its display `unit` (common non-UCUM spellings such as `mmHg` mapped), else
 * its `code`, else '' (no unit).
 */
export function quantityUnit(unit: unknown, system: unknown, code: unknown): string {
  if (system === UCUM_SYSTEM && typeof code === 'string' && code !== '') return code;
  if (typeof unit === 'string' && unit !== '') return DISPLAY_ALIASES[unit] ?? unit;
  if (typeof code === 'string') return code;
  return '';
}
