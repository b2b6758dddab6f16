/**
 * SQL-on-FHIR v2 ViewDefinitions: `compileView` checks a whole view (every problem at once, each
 * named by its JSON pointer), then builds a runner that turns one resource into rows.
 *
 * The runner is a fixed graph of closures built once per view: each `select` writes its columns
 * into one shared value vector and calls the continuation that runs its nested selects, its
 * `unionAll` branches and then its following siblings; the last continuation copies the vector
 * into a row. A `forEach` calls its body once per item, a `forEachOrNull` with no items writes
 * nulls over all its columns and calls the continuation once, so rows are the cross product the
 * spec describes without building intermediate row sets. Nothing is allocated per resource but
 * the rows themselves and what fhirpath.js allocates for the expressions it evaluates.
 *
 * Expressions go to the fast path (`fast-path.ts`) when it takes them and to fhirpath.js
 * otherwise. A `forEach` runs on the fast path only when everything beneath it does, because the
 * items the fast path yields are plain JSON, while fhirpath needs its own nodes (which carry each
 * item's model type) to evaluate beneath a `forEach`.
 */
import fhirpath from 'fhirpath';
import { Errors, MAX_PROBLEMS, isMedfitError } from '../../core/index.js';
import type { Resource, ViewRow } from '../types.js';
import { R4_RESOURCE_TYPES } from '../resource-types.js';
import { r4 } from './model.js';
import { BUILTIN_VARIABLES, checkExpression, compileFhirpath, type Ast, type FhirpathFn, type Problem } from './expression.js';
import { NO_FOCUS, compileFast, finalValue, type FastConstant, type FastEnv, type FastExpr, type StaticNode } from './fast-path.js';
import { FULL_URL_VAR } from './functions.js';

/** One output column of a view, in output order. */
export interface ViewColumn {
  name: string;
  /** The FHIR type the view declares for it, if any (a hint: values are not converted). */
  type?: string;
  /** Whether the column holds an array of every value (`collection: true`) or one value or null. */
  collection: boolean;
}

/** A checked, compiled ViewDefinition. */
export interface CompiledView {
  /** The resource type the view reads; `run` gives no rows for any other. */
  resource: string;
  /** The output columns, in order. */
  columns: ViewColumn[];
  /**
   * The rows of one resource. `context.fullUrl` (a Bundle entry's) stands in for a missing `id` in
   * `getResourceKey()`. Throws `Errors.badData` naming the view's pointer when the data breaks a
   * rule the view sets (several values in a non-collection column, a non-boolean `where`).
   */
  run(resource: Resource, context?: { fullUrl?: string }): ViewRow[];
}

/** How to compile; tests and benchmarks turn the fast path off to compare with fhirpath alone. */
export interface CompileOptions {
  /** Compile simple expressions to closures instead of fhirpath.js (default true). */
  fastPath?: boolean;
}

/** Column and view names: letters, digits and underscores, starting with a letter (spec: `sql-name`). */
const NAME = /^[A-Za-z][A-Za-z0-9_]*$/;
/** FHIR date, dateTime and time texts; anchored and without nested repetition, so linear. */
const DATE = /^[0-9]{4}(-[0-9]{2}(-[0-9]{2})?)?$/;
const DATE_TIME = /^[0-9]{4}(-[0-9]{2}(-[0-9]{2}(T[0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,9})?)?(Z|[+-][0-9]{2}:[0-9]{2})?)?)?)?$/;
const TIME = /^[0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,9})?)?$/;

/** The deepest `repeat` recursion followed; a path that does not descend (`$this`) would loop forever. */
const MAX_REPEAT_DEPTH = 64;

const VIEW_KEYS = new Set([
  'resourceType', 'id', 'meta', 'implicitRules', 'language', 'text', 'contained', 'extension', 'modifierExtension', 'url',
  'identifier', 'version', 'name', 'title', 'status', 'experimental', 'date', 'publisher', 'contact', 'description',
  'useContext', 'jurisdiction', 'purpose', 'copyright', 'profile', 'resource', 'resourceVersion', 'fhirVersion', 'constant',
  'select', 'where',
]);
const SELECT_KEYS = new Set(['column', 'select', 'forEach', 'forEachOrNull', 'repeat', 'unionAll', 'id', 'extension', 'description']);
const COLUMN_KEYS = new Set(['name', 'path', 'description', 'collection', 'type', 'tag', 'id', 'extension']);
const WHERE_KEYS = new Set(['path', 'description', 'id', 'extension']);
const STATUSES = new Set(['draft', 'active', 'retired', 'unknown']);

const STRING_CONSTANTS = new Set(['Base64Binary', 'Canonical', 'Code', 'Id', 'Markdown', 'Oid', 'String', 'Uri', 'Url', 'Uuid']);
const CONSTANT_TYPES = new Set([...STRING_CONSTANTS, 'Boolean', 'Integer', 'PositiveInt', 'UnsignedInt', 'Decimal', 'Date', 'DateTime', 'Instant', 'Time']);

interface Expr {
  text: string;
  pointer: string;
  ast: Ast;
}
interface ColumnDef {
  name: string;
  pointer: string;
  path: Expr;
  collection: boolean;
  type?: string;
}
interface SelectDef {
  pointer: string;
  columns: ColumnDef[];
  selects: SelectDef[];
  unionAll: SelectDef[] | undefined;
  forEach?: Expr;
  orNull: boolean;
  repeat?: Expr[];
  /** Every output column of this select (own, nested, first union branch), in order. */
  names: Array<{ name: string; pointer: string }>;
  /** Position of its first column in the output. */
  start: number;
}

const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);
const ptr = (p: string): string => p || '/';

/**
 * Checks a ViewDefinition and compiles it. Every problem found is reported at once: the message
 * names the first by JSON pointer (`view.json: /select/0/column/2/path: unknown function "foo"`)
 * and counts the rest; `details` lists them. `where` names the view (a file name) in messages.
 */
export function compileView(view: unknown, where?: string, options: CompileOptions = {}): CompiledView {
  const problems: Problem[] = [];
  const checked = checkView(view, problems);
  if (problems.length > 0 || checked === undefined) {
    const shown = problems.slice(0, MAX_PROBLEMS).map((p) => ({ pointer: ptr(p.pointer), message: p.message }));
    const first = shown[0] ?? { pointer: '/', message: 'not a valid ViewDefinition' };
    const rest = problems.length - 1;
    throw Errors.badData(where ?? '', `${first.pointer}: ${first.message}${rest > 0 ? ` (and ${rest} more problem(s))` : ''}`, shown);
  }
  return build(checked, where ?? '', options.fastPath !== false);
}

interface CheckedView {
  resource: string;
  constants: Map<string, unknown>;
  fastConstants: Map<string, FastConstant>;
  selects: SelectDef[];
  where: Expr[];
  columns: ViewColumn[];
}

function checkView(view: unknown, problems: Problem[]): CheckedView | undefined {
  const add = (pointer: string, message: string): void => {
    problems.push({ pointer, message });
  };
  if (!isObject(view)) {
    add('', 'a ViewDefinition must be a JSON object');
    return undefined;
  }
  for (const k of Object.keys(view)) if (!VIEW_KEYS.has(k)) add(`/${k}`, 'unknown property of a ViewDefinition');
  const rt = view.resourceType;
  if (rt !== undefined && !(typeof rt === 'string' && (rt === 'ViewDefinition' || rt.endsWith('/ViewDefinition')))) add('/resourceType', 'must be "ViewDefinition"');
  let resource = '';
  if (view.resource === undefined) add('/resource', 'missing: name the FHIR resource type the view reads, e.g. "Patient"');
  else if (typeof view.resource !== 'string') add('/resource', 'must be a string');
  else if (!R4_RESOURCE_TYPES.has(view.resource)) add('/resource', `"${view.resource}" is not an R4 resource type`);
  else resource = view.resource;
  if (view.name !== undefined && (typeof view.name !== 'string' || !NAME.test(view.name))) add('/name', 'must be letters, digits and underscores, starting with a letter');
  if (view.status !== undefined && (typeof view.status !== 'string' || !STATUSES.has(view.status))) add('/status', 'must be draft, active, retired or unknown');

  // Constants first: expressions are checked against their names.
  const constants = new Map<string, unknown>();
  const fastConstants = new Map<string, FastConstant>();
  // Names of constants with a bad value still count as defined: one problem, not one per use.
  const constNames = new Set<string>();
  if (view.constant !== undefined) {
    if (!Array.isArray(view.constant)) add('/constant', 'must be an array');
    else view.constant.forEach((c, i) => checkConstant(c, `/constant/${i}`, constants, fastConstants, constNames, add));
  }
  const expr = (v: unknown, pointer: string, what: string): Expr | undefined => {
    if (typeof v !== 'string') {
      add(pointer, `${what} must be a FHIRPath expression (a string)`);
      return undefined;
    }
    const ast = checkExpression(v, pointer, constNames, problems);
    return ast ? { text: v, pointer, ast } : undefined;
  };

  const selects: SelectDef[] = [];
  if (view.select === undefined) add('/select', 'missing: a view needs at least one select');
  else if (!Array.isArray(view.select) || view.select.length === 0) add('/select', 'must be a non-empty array');
  else view.select.forEach((s, i) => {
    const d = checkSelect(s, `/select/${i}`, add, expr);
    if (d) selects.push(d);
  });

  const where: Expr[] = [];
  if (view.where !== undefined) {
    if (!Array.isArray(view.where)) add('/where', 'must be an array');
    else view.where.forEach((w, i) => {
      const p = `/where/${i}`;
      if (!isObject(w)) return add(p, 'must be an object with a path');
      for (const k of Object.keys(w)) if (!WHERE_KEYS.has(k)) add(`${p}/${k}`, 'unknown property of a where');
      if (w.path === undefined) return add(`${p}/path`, 'missing');
      const e = expr(w.path, `${p}/path`, 'path');
      if (e) where.push(e);
    });
  }

  // Column names: unique across the view.
  const all = selects.flatMap((s) => s.names);
  const seen = new Map<string, string>();
  for (const { name, pointer } of all) {
    const before = seen.get(name);
    if (before !== undefined) add(`${pointer}/name`, `duplicate column name "${name}" (also at ${before}/name)`);
    else seen.set(name, pointer);
  }
  if (problems.length > 0) return undefined;

  let pos = 0;
  const place = (s: SelectDef): void => {
    s.start = pos;
    pos += s.columns.length;
    for (const n of s.selects) place(n);
    if (s.unionAll) {
      const at = pos;
      for (const b of s.unionAll) {
        pos = at;
        place(b);
      }
    }
  };
  for (const s of selects) place(s);
  const columns: ViewColumn[] = [];
  const collect = (s: SelectDef): void => {
    for (const c of s.columns) columns.push(c.type !== undefined ? { name: c.name, type: c.type, collection: c.collection } : { name: c.name, collection: c.collection });
    for (const n of s.selects) collect(n);
    if (s.unionAll) collect(s.unionAll[0]!);
  };
  for (const s of selects) collect(s);
  return { resource, constants, fastConstants, selects, where, columns };
}

function checkConstant(
  c: unknown,
  p: string,
  constants: Map<string, unknown>,
  fastConstants: Map<string, FastConstant>,
  names: Set<string>,
  add: (pointer: string, message: string) => void,
): void {
  if (!isObject(c)) return add(p, 'a constant must be an object with a name and a value[x]');
  const name = c.name;
  let ok = true;
  if (typeof name !== 'string' || !NAME.test(name)) {
    add(`${p}/name`, name === undefined ? 'missing' : 'must be letters, digits and underscores, starting with a letter');
    ok = false;
  } else if (BUILTIN_VARIABLES.has(name)) {
    add(`${p}/name`, `"${name}" is a built-in variable`);
    ok = false;
  } else if (names.has(name)) {
    add(`${p}/name`, `duplicate constant "${name}"`);
    ok = false;
  } else {
    names.add(name);
  }
  const valueKeys = Object.keys(c).filter((k) => k.startsWith('value'));
  for (const k of Object.keys(c)) if (k !== 'name' && k !== 'id' && k !== 'extension' && !k.startsWith('value')) add(`${p}/${k}`, 'unknown property of a constant');
  if (valueKeys.length !== 1) {
    add(p, valueKeys.length === 0 ? 'needs a value (valueString, valueInteger, valueDate, …)' : 'has more than one value[x]');
    return;
  }
  const key = valueKeys[0]!;
  const kind = key.slice(5);
  const v = c[key];
  const vp = `${p}/${key}`;
  if (!CONSTANT_TYPES.has(kind)) return add(vp, `unknown constant type "${kind}"`);
  let value: unknown;
  if (STRING_CONSTANTS.has(kind)) {
    if (typeof v !== 'string') return add(vp, 'must be a string');
    value = v;
  } else if (kind === 'Boolean') {
    if (typeof v !== 'boolean') return add(vp, 'must be true or false');
    value = v;
  } else if (kind === 'Integer' || kind === 'PositiveInt' || kind === 'UnsignedInt') {
    const min = kind === 'Integer' ? -2147483648 : kind === 'PositiveInt' ? 1 : 0;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > 2147483647) return add(vp, `must be an integer from ${min} to 2147483647`);
    value = v;
  } else if (kind === 'Decimal') {
    if (!((typeof v === 'number' && Number.isFinite(v)) || v instanceof fhirpath.FP_Decimal)) return add(vp, 'must be a number');
    value = v;
  } else {
    // Dates and times become FHIRPath values of their own type, so `birthDate = %d` compares dates.
    const pattern = kind === 'Date' ? DATE : kind === 'Time' ? TIME : DATE_TIME;
    if (typeof v !== 'string' || !pattern.test(v) || (kind === 'Instant' && !v.includes('T'))) return add(vp, `must be a FHIR ${kind.charAt(0).toLowerCase()}${kind.slice(1)}`);
    const literal = kind === 'Time' ? `@T${v}` : kind !== 'Date' && !v.includes('T') ? `@${v}T` : `@${v}`;
    try {
      value = fhirpath.evaluate({}, literal, {}, r4, { resolveInternalTypes: false })[0];
    } catch {
      value = undefined;
    }
    if (value === undefined) return add(vp, `must be a FHIR ${kind.charAt(0).toLowerCase()}${kind.slice(1)}`);
  }
  if (!ok) return;
  constants.set(name as string, value);
  if (typeof value === 'string' || typeof value === 'boolean' || typeof value === 'number') fastConstants.set(name as string, value);
}

function checkSelect(
  s: unknown,
  p: string,
  add: (pointer: string, message: string) => void,
  expr: (v: unknown, pointer: string, what: string) => Expr | undefined,
): SelectDef | undefined {
  if (!isObject(s)) {
    add(p, 'a select must be an object');
    return undefined;
  }
  for (const k of Object.keys(s)) if (!SELECT_KEYS.has(k)) add(`${p}/${k}`, 'unknown property of a select (it has column, select, forEach, forEachOrNull, repeat, unionAll)');
  const def: SelectDef = { pointer: p, columns: [], selects: [], unionAll: undefined, orNull: false, names: [], start: 0 };
  let bad = false;
  const iterators = ['forEach', 'forEachOrNull', 'repeat'].filter((k) => s[k] !== undefined);
  if (iterators.length > 1) {
    add(p, `has both ${iterators.join(' and ')}: a select takes at most one`);
    bad = true;
  }
  if (s.forEach !== undefined || s.forEachOrNull !== undefined) {
    const k = s.forEach !== undefined ? 'forEach' : 'forEachOrNull';
    const e = expr(s[k], `${p}/${k}`, k);
    if (e) def.forEach = e;
    else bad = true;
    def.orNull = k === 'forEachOrNull';
  } else if (s.repeat !== undefined) {
    if (!Array.isArray(s.repeat) || s.repeat.length === 0) {
      add(`${p}/repeat`, 'must be a non-empty array of FHIRPath expressions');
      bad = true;
    } else {
      def.repeat = [];
      s.repeat.forEach((r, i) => {
        const e = expr(r, `${p}/repeat/${i}`, 'repeat path');
        if (e) def.repeat!.push(e);
        else bad = true;
      });
    }
  }
  if (s.column === undefined && s.select === undefined && s.unionAll === undefined) {
    add(p, 'has no column, select or unionAll: it would add no columns');
    bad = true;
  }
  if (s.column !== undefined) {
    if (!Array.isArray(s.column) || s.column.length === 0) {
      add(`${p}/column`, 'must be a non-empty array');
      bad = true;
    } else {
      s.column.forEach((c, i) => {
        const cp = `${p}/column/${i}`;
        const col = checkColumn(c, cp, add, expr);
        if (col) {
          def.columns.push(col);
          def.names.push({ name: col.name, pointer: cp });
        } else bad = true;
      });
    }
  }
  if (s.select !== undefined) {
    if (!Array.isArray(s.select) || s.select.length === 0) {
      add(`${p}/select`, 'must be a non-empty array');
      bad = true;
    } else {
      s.select.forEach((n, i) => {
        const d = checkSelect(n, `${p}/select/${i}`, add, expr);
        if (d) {
          def.selects.push(d);
          def.names.push(...d.names);
        } else bad = true;
      });
    }
  }
  if (s.unionAll !== undefined) {
    if (!Array.isArray(s.unionAll) || s.unionAll.length === 0) {
      add(`${p}/unionAll`, 'must be a non-empty array');
      bad = true;
    } else {
      const branches: SelectDef[] = [];
      s.unionAll.forEach((n, i) => {
        const d = checkSelect(n, `${p}/unionAll/${i}`, add, expr);
        if (d) branches.push(d);
        else bad = true;
      });
      if (!bad) {
        const want = branches[0]!.names.map((n) => n.name).join(', ');
        branches.forEach((b, i) => {
          const got = b.names.map((n) => n.name).join(', ');
          if (i > 0 && got !== want) {
            add(`${p}/unionAll/${i}`, `columns (${got}) differ from those of ${p}/unionAll/0 (${want}): every branch needs the same names in the same order`);
            bad = true;
          }
        });
        def.unionAll = branches;
        def.names.push(...branches[0]!.names);
      }
    }
  }
  return bad ? undefined : def;
}

function checkColumn(
  c: unknown,
  p: string,
  add: (pointer: string, message: string) => void,
  expr: (v: unknown, pointer: string, what: string) => Expr | undefined,
): ColumnDef | undefined {
  if (!isObject(c)) {
    add(p, 'a column must be an object with a name and a path');
    return undefined;
  }
  let bad = false;
  for (const k of Object.keys(c)) {
    if (!COLUMN_KEYS.has(k)) {
      add(`${p}/${k}`, 'unknown property of a column (it has name, path, collection, type, description, tag)');
      bad = true;
    }
  }
  if (typeof c.name !== 'string' || !NAME.test(c.name)) {
    add(`${p}/name`, c.name === undefined ? 'missing' : 'must be letters, digits and underscores, starting with a letter');
    bad = true;
  }
  if (c.collection !== undefined && typeof c.collection !== 'boolean') {
    add(`${p}/collection`, 'must be true or false');
    bad = true;
  }
  if (c.type !== undefined && (typeof c.type !== 'string' || !r4.availableTypes.has(c.type))) {
    add(`${p}/type`, typeof c.type === 'string' ? `"${c.type}" is not an R4 type` : 'must be a FHIR type name');
    bad = true;
  }
  if (c.description !== undefined && typeof c.description !== 'string') {
    add(`${p}/description`, 'must be a string');
    bad = true;
  }
  if (c.tag !== undefined && !Array.isArray(c.tag)) {
    add(`${p}/tag`, 'must be an array');
    bad = true;
  }
  let path: Expr | undefined;
  if (c.path === undefined) {
    add(`${p}/path`, 'missing');
    bad = true;
  } else {
    path = expr(c.path, `${p}/path`, 'path');
    if (!path) bad = true;
  }
  if (bad || !path) return undefined;
  const col: ColumnDef = { name: c.name as string, pointer: p, path, collection: c.collection === true };
  if (typeof c.type === 'string') col.type = c.type;
  return col;
}

// ---------------------------------------------------------------------------------------------
// The runner.

/** Where a select's focus lives: the resource itself, a plain JSON item (fast path) or a fhirpath node. */
type Mode = 'root' | 'fast' | 'nodes';

/** The focus of a select while it runs: a value, its `_value` sibling (fast path) and its %rowIndex. */
interface Slot {
  v: unknown;
  x: unknown;
  i: number;
}

type Cont = () => void;

const isPrimitive = (t: string | undefined): boolean => t === undefined || t.startsWith('System.') || (t.charCodeAt(0) >= 0x61 && t.charCodeAt(0) <= 0x7a);

function build(cv: CheckedView, where: string, fast: boolean): CompiledView {
  const names = cv.columns.map((c) => c.name);
  const width = names.length;
  const vals: unknown[] = new Array<unknown>(width).fill(null);
  let rows: ViewRow[] = [];
  const vars: Record<string, unknown> = Object.fromEntries(cv.constants);
  vars.rowIndex = 0;
  vars.resource = null;
  vars.rootResource = null;
  vars[FULL_URL_VAR] = undefined;
  const env: FastEnv = { rowIndex: 0, fullUrl: undefined };
  const rootStatic: StaticNode = { path: cv.resource, type: cv.resource, root: true, resourceType: cv.resource };

  const fail = (pointer: string, message: string): never => {
    throw Errors.badData(where, `${pointer}: ${message}`);
  };
  /** Runs fhirpath; its own errors can quote data, so they become ours with the pointer only. */
  const evaluate = (fn: FhirpathFn, input: unknown, i: number, pointer: string): unknown[] => {
    vars.rowIndex = i;
    try {
      return fn(input, vars);
    } catch (e) {
      if (isMedfitError(e)) throw e;
      return fail(pointer, 'the FHIRPath expression failed on this resource (a function got a value of the wrong type or several values where it takes one)');
    }
  };
  const tryFast = (e: Expr, focus: StaticNode | undefined): FastExpr | undefined => (fast && focus ? compileFast(e.ast, focus, cv.fastConstants) : undefined);

  /** A column's value from a result: the array, or the one value, or null; several is an error. */
  const one = (e: Expr, values: unknown[], n: number, collection: boolean): unknown => {
    if (collection) {
      const arr: unknown[] = [];
      for (let k = 0; k < n; k++) {
        const v = values[k];
        if (v != null) arr.push(finalValue(v));
      }
      return arr;
    }
    let found: unknown = null;
    let count = 0;
    for (let k = 0; k < n; k++) {
      const v = values[k];
      if (v != null) {
        if (++count > 1) fail(e.pointer, 'more than one value, and "collection" is not true');
        found = finalValue(v);
      }
    }
    return found;
  };

  /** An evaluator writing one column's value into `vals[pos]`. */
  const column = (c: ColumnDef, pos: number, slot: Slot, mode: Mode, stat: StaticNode | undefined): Cont => {
    const f = mode !== 'nodes' ? tryFast(c.path, stat) : undefined;
    if (f) {
      return () => {
        env.rowIndex = slot.i;
        const n = f.run(slot.v, slot.x, env);
        vals[pos] = one(c.path, f.D, n, c.collection);
      };
    }
    if (mode === 'fast') throw Errors.internal(`view: ${c.path.pointer} left the fast path inside a fast forEach`);
    const fn = compileFhirpath(c.path.text, false);
    return () => {
      const r = evaluate(fn, slot.v, slot.i, c.path.pointer);
      vals[pos] = one(c.path, r, r.length, c.collection);
    };
  };

  /** Whether every expression in a select (and beneath it) takes the fast path from `stat`. */
  const allFast = (s: SelectDef, stat: StaticNode | undefined): boolean => {
    if (!fast || !stat || s.repeat) return false;
    let inner = stat;
    if (s.forEach) {
      const f = tryFast(s.forEach, stat);
      if (!f || f.out.path === undefined || isPrimitive(f.out.type)) return false;
      inner = f.out;
    }
    return (
      s.columns.every((c) => tryFast(c.path, inner) !== undefined) &&
      s.selects.every((n) => allFast(n, inner)) &&
      (s.unionAll ?? []).every((b) => allFast(b, inner))
    );
  };

  const list = (defs: SelectDef[], slot: Slot, mode: Mode, stat: StaticNode | undefined, k: Cont): Cont => {
    let next = k;
    for (let j = defs.length - 1; j >= 0; j--) next = select(defs[j]!, slot, mode, stat, next);
    return next;
  };

  const select = (s: SelectDef, parent: Slot, mode: Mode, stat: StaticNode | undefined, k: Cont): Cont => {
    // The focus beneath this select, and how its items are produced.
    let slot = parent;
    let childMode = mode;
    let childStat = stat;
    let iterate: ((body: () => void) => number) | undefined;
    if (s.forEach || s.repeat) {
      slot = { v: null, x: null, i: 0 };
      const own = slot;
      const fastIter = mode !== 'nodes' && s.forEach && allFast(s, stat) ? tryFast(s.forEach, stat) : undefined;
      if (fastIter) {
        childMode = 'fast';
        childStat = fastIter.out;
        iterate = (body) => {
          env.rowIndex = parent.i;
          const n = fastIter.run(parent.v, parent.x, env);
          const D = fastIter.D;
          const X = fastIter.X;
          for (let i = 0; i < n; i++) {
            own.v = D[i];
            own.x = X[i];
            own.i = i;
            body();
          }
          return n;
        };
      } else {
        if (mode === 'fast') throw Errors.internal(`view: ${s.pointer} left the fast path inside a fast forEach`);
        childMode = 'nodes';
        childStat = undefined;
        if (s.forEach) {
          const e = s.forEach;
          const fn = compileFhirpath(e.text, true);
          iterate = (body) => {
            const items = evaluate(fn, parent.v, parent.i, e.pointer);
            for (let i = 0; i < items.length; i++) {
              own.v = items[i];
              own.i = i;
              body();
            }
            return items.length;
          };
        } else {
          const paths = s.repeat!.map((e) => ({ e, fn: compileFhirpath(e.text, true) }));
          const descend = (node: unknown, depth: number, out: unknown[]): void => {
            if (depth > MAX_REPEAT_DEPTH) fail(`${s.pointer}/repeat`, `nests deeper than ${MAX_REPEAT_DEPTH} levels (does a path not descend?)`);
            for (const { e, fn } of paths) {
              const items = evaluate(fn, node, 0, e.pointer);
              for (const it of items) {
                out.push(it);
                descend(it, depth + 1, out);
              }
            }
          };
          iterate = (body) => {
            const items: unknown[] = [];
            descend(parent.v, 0, items);
            for (let i = 0; i < items.length; i++) {
              own.v = items[i];
              own.i = i;
              body();
            }
            return items.length;
          };
        }
      }
    }
    const cols = s.columns.map((c, j) => column(c, s.start + j, slot, childMode, childStat));
    let inner = k;
    if (s.unionAll) {
      const branches = s.unionAll.map((b) => select(b, slot, childMode, childStat, k));
      inner = () => {
        for (const b of branches) b();
      };
    }
    inner = list(s.selects, slot, childMode, childStat, inner);
    const body = (): void => {
      for (const c of cols) c();
      inner();
    };
    if (!iterate) return body;
    const it = iterate;
    if (!s.orNull) return () => void it(body);
    // No items: the body runs once on no focus (paths give null, %rowIndex 0), as the spec's
    // reference runner does; a forEach beneath it then finds nothing and the row goes.
    const own = slot;
    const fastMode = childMode === 'fast';
    return () => {
      if (it(body) > 0) return;
      own.v = fastMode ? NO_FOCUS : [];
      own.x = null;
      own.i = 0;
      body();
    };
  };

  const rootSlot: Slot = { v: null, x: null, i: 0 };
  const emit: Cont = () => {
    const row: ViewRow = {};
    for (let j = 0; j < width; j++) row[names[j]!] = vals[j];
    rows.push(row);
  };
  const top = list(cv.selects, rootSlot, 'root', rootStatic, emit);
  const wheres = cv.where.map((e) => {
    const f = tryFast(e, rootStatic);
    const fn = f ? undefined : compileFhirpath(e.text, false);
    return (): boolean => {
      let v: unknown;
      let n: number;
      if (f) {
        env.rowIndex = 0;
        const m = f.run(rootSlot.v, null, env);
        n = 0;
        for (let k = 0; k < m; k++) {
          if (f.D[k] != null) {
            v = f.D[k];
            n++;
          }
        }
      } else {
        const r = evaluate(fn!, rootSlot.v, 0, e.pointer);
        n = r.length;
        v = r[0];
      }
      if (n === 0) return false;
      if (n > 1 || typeof v !== 'boolean') fail(e.pointer, 'a where path must give true, false or nothing; it gave something else');
      return v as boolean;
    };
  });

  return {
    resource: cv.resource,
    columns: cv.columns,
    run(resource: Resource, context?: { fullUrl?: string }): ViewRow[] {
      if (resource === null || typeof resource !== 'object' || resource.resourceType !== cv.resource) return [];
      rootSlot.v = resource;
      rootSlot.i = 0;
      vars.resource = resource;
      vars.rootResource = resource;
      vars[FULL_URL_VAR] = context?.fullUrl;
      env.fullUrl = context?.fullUrl;
      rows = [];
      for (const w of wheres) if (!w()) return [];
      top();
      const out = rows;
      rows = [];
      return out;
    },
  };
}
