/**
 * The fast path: FHIRPath expressions in a small, common subset compiled to plain JavaScript
 * closures, because fhirpath.js costs about 22 µs an evaluation here and a feature table evaluates
 * a handful of expressions per resource over hundreds of thousands of resources.
 *
 * The subset: dotted member paths (`code.coding.system`, flattening collections), `ofType(T)` (on
 * choice elements, `value.ofType(Quantity)` reads `valueQuantity`), `first()`, `exists()`,
 * `empty()`, `[n]`, `where(a.b = 'x')` with `and`/`or`, `getResourceKey()`, `getReferenceKey([T])`,
 * `$this`, a string literal, `%rowIndex` and a constant. Anything else, or anything whose types the
 * R4 model cannot settle at compile time, returns `undefined` and the caller uses fhirpath.js.
 *
 * Results must equal fhirpath.js's exactly, so the closures copy its navigation rules
 * (`util.makeChildResNodes`): a node is a value and its `_value` sibling (extensions of a
 * primitive), array items that are null but have a `_value` still count for `exists()`, `first()`
 * and `[n]`, and nulls are dropped only from the final result. They assume what valid FHIR JSON
 * guarantees: only resources carry `resourceType`. `fast-path.test.ts` compares both engines.
 */
import fhirpath from 'fhirpath';
import { identifierName, variableName, type Ast } from './expression.js';
import { isResourceTypeName, memberInfo, passesOfType, STRING_LIKE } from './model.js';
import { referenceKey, resourceKey } from './functions.js';

const FP_Decimal = fhirpath.FP_Decimal;

/** What is known at compile time about the nodes an expression step yields. */
export interface StaticNode {
  /** The model path further member steps navigate from; undefined: not known (no further members). */
  path: string | undefined;
  /** The model type (`Coding`, `string`, `System.String`); undefined: not known. */
  type: string | undefined;
  /** The focus is the resource itself (the view's root), where `getResourceKey()` applies. */
  root?: boolean;
  /** The resource type, when `root`. */
  resourceType?: string;
}

/** Per-evaluation inputs the closures read (set by the view before each call). */
export interface FastEnv {
  rowIndex: number;
  fullUrl: string | undefined;
}

/** A compiled fast expression: `run` leaves its result nodes in `D` (values) and `X` (`_value` siblings) and returns how many. */
export interface FastExpr {
  run(d: unknown, x: unknown, env: FastEnv): number;
  /** Result values after `run` (slots past the count are stale). */
  D: unknown[];
  /** Result `_value` siblings after `run`. */
  X: unknown[];
  /** What is known of the result nodes. */
  out: StaticNode;
}

/**
 * The focus of a `forEachOrNull` that found nothing: its body then runs once on no node at all, so
 * paths give nothing (null columns) while `%rowIndex` is 0, as in the spec's reference runner.
 */
export const NO_FOCUS: unique symbol = Symbol('no focus');

/** A constant of the view, as the fast path may use it (strings, booleans and plain numbers only). */
export type FastConstant = string | number | boolean;

/** One step: reads `n` nodes from (inD, inX), writes to (outD, outX), returns the count written. */
type Step = (inD: unknown[], inX: unknown[], n: number, outD: unknown[], outX: unknown[], env: FastEnv) => number;

/** fhirpath's `util.isSome`: not null, not undefined, not an empty array. */
const isSome = (v: unknown): boolean => v !== null && v !== undefined && !(Array.isArray(v) && v.length === 0);

/**
 * Appends the child nodes of one parent for `toAdd`/`_toAdd` (the member's value and its `_`
 * sibling) exactly as `util.makeChildResNodes` builds them. Returns the new count.
 */
function pushChildren(toAdd: unknown, _toAdd: unknown, outD: unknown[], outX: unknown[], m: number): number {
  if (!isSome(toAdd) && !isSome(_toAdd)) return m;
  const ex = _toAdd as unknown[] | Record<string, unknown> | null | undefined;
  if (Array.isArray(toAdd)) {
    const len = toAdd.length;
    for (let j = 0; j < len; j++) {
      outD[m] = toAdd[j];
      outX[m++] = (ex && (ex as unknown[])[j]) || null;
    }
    const exLen = ((ex as { length?: number } | null | undefined)?.length as number) || 0;
    for (let j = len; j < exLen; j++) {
      outD[m] = null;
      outX[m++] = (ex as unknown[])[j] || null;
    }
    return m;
  }
  if (toAdd == null && Array.isArray(ex)) {
    for (let j = 0; j < ex.length; j++) {
      outD[m] = null;
      outX[m++] = ex[j] || null;
    }
    return m;
  }
  outD[m] = toAdd;
  outX[m++] = ex || null;
  return m;
}

function memberStep(key: string): Step {
  const _key = `_${key}`;
  return (inD, inX, n, outD, outX) => {
    let m = 0;
    for (let i = 0; i < n; i++) {
      const d = inD[i] as Record<string, unknown> | null | undefined;
      let toAdd = d?.[key];
      const _toAdd = d?.[_key];
      if (toAdd === undefined && _toAdd === undefined) toAdd = (inX[i] as Record<string, unknown> | null)?.[key];
      m = pushChildren(toAdd, _toAdd, outD, outX, m);
    }
    return m;
  };
}

function choiceStep(key: string, suffixes: readonly string[], accepted: readonly boolean[]): Step {
  const fields = suffixes.map((s) => key + s);
  const _fields = fields.map((f) => `_${f}`);
  const k = fields.length;
  return (inD, _inX, n, outD, outX) => {
    let m = 0;
    for (let i = 0; i < n; i++) {
      const d = inD[i] as Record<string, unknown> | null | undefined;
      if (d === null || d === undefined) continue;
      for (let t = 0; t < k; t++) {
        const toAdd = d[fields[t]!];
        const _toAdd = d[_fields[t]!];
        if (toAdd !== undefined || _toAdd !== undefined) {
          if (accepted[t]) m = pushChildren(toAdd, _toAdd, outD, outX, m);
          break;
        }
      }
    }
    return m;
  };
}

const identityStep: Step = (inD, inX, n, outD, outX) => {
  for (let i = 0; i < n; i++) {
    outD[i] = inD[i];
    outX[i] = inX[i];
  }
  return n;
};
const nothingStep: Step = () => 0;
const firstStep: Step = (inD, inX, n, outD, outX) => {
  if (n === 0) return 0;
  outD[0] = inD[0];
  outX[0] = inX[0];
  return 1;
};
const existsStep: Step = (_inD, _inX, n, outD, outX) => {
  outD[0] = n > 0;
  outX[0] = null;
  return 1;
};
const emptyStep: Step = (_inD, _inX, n, outD, outX) => {
  outD[0] = n === 0;
  outX[0] = null;
  return 1;
};
function indexStep(k: number): Step {
  return (inD, inX, n, outD, outX) => {
    if (k >= n) return 0;
    outD[0] = inD[k];
    outX[0] = inX[k];
    return 1;
  };
}
function valueStep(value: (env: FastEnv) => unknown): Step {
  return (_inD, _inX, _n, outD, outX, env) => {
    outD[0] = value(env);
    outX[0] = null;
    return 1;
  };
}
const resourceKeyStep: Step = (inD, _inX, n, outD, outX, env) => {
  let m = 0;
  for (let i = 0; i < n; i++) {
    const k = resourceKey(inD[i], env.fullUrl);
    if (k !== undefined) {
      outD[m] = k;
      outX[m++] = null;
    }
  }
  return m;
};
function referenceKeyStep(type: string | undefined): Step {
  return (inD, _inX, n, outD, outX) => {
    let m = 0;
    for (let i = 0; i < n; i++) {
      const k = referenceKey(inD[i], type);
      if (k !== undefined) {
        outD[m] = k;
        outX[m++] = null;
      }
    }
    return m;
  };
}
function whereStep(cond: (d: unknown, x: unknown, env: FastEnv) => boolean): Step {
  return (inD, inX, n, outD, outX, env) => {
    let m = 0;
    for (let i = 0; i < n; i++) {
      if (cond(inD[i], inX[i], env)) {
        outD[m] = inD[i];
        outX[m++] = inX[i];
      }
    }
    return m;
  };
}

/** Runs a list of steps from one node with ping-pong buffers owned by the compiled expression. */
function chain(steps: Step[], out: StaticNode): FastExpr {
  const a: unknown[] = [];
  const ax: unknown[] = [];
  const b: unknown[] = [];
  const bx: unknown[] = [];
  const expr: FastExpr = {
    D: a,
    X: ax,
    out,
    run(d, x, env) {
      let inD = a;
      let inX = ax;
      let outD = b;
      let outX = bx;
      inD[0] = d;
      inX[0] = x;
      let n = d === NO_FOCUS ? 0 : 1;
      for (let s = 0; s < steps.length; s++) {
        n = steps[s]!(inD, inX, n, outD, outX, env);
        const t = inD;
        inD = outD;
        outD = t;
        const tx = inX;
        inX = outX;
        outX = tx;
      }
      expr.D = inD;
      expr.X = inX;
      return n;
    },
  };
  return expr;
}

/** The terms of a left-deep invocation chain (`a.b.where(…).first()`), or undefined for any other shape. */
function flatten(n: Ast): Ast[] | undefined {
  switch (n.type) {
    case 'EntireExpression':
    case 'TermExpression':
    case 'InvocationTerm':
    case 'ParenthesizedTerm':
      return n.children?.length === 1 ? flatten(n.children[0]!) : undefined;
    case 'InvocationExpression': {
      const left = n.children?.[0];
      const right = n.children?.[1];
      if (!left || !right || n.children!.length !== 2) return undefined;
      const l = flatten(left);
      return l && (right.type === 'MemberInvocation' || right.type === 'FunctionInvocation') ? [...l, right] : undefined;
    }
    case 'IndexerExpression': {
      const left = n.children?.[0];
      const idx = n.children?.[1];
      const l = left && flatten(left);
      return l && idx ? [...l, { type: 'Indexer', children: [idx] }] : undefined;
    }
    case 'MemberInvocation':
    case 'FunctionInvocation':
    case 'ThisInvocation':
    case 'LiteralTerm':
    case 'ExternalConstantTerm':
      return [n];
    default:
      return undefined;
  }
}

function fnName(n: Ast): string {
  return identifierName(n.children?.[0]?.children?.[0]?.text);
}
function fnParams(n: Ast): Ast[] {
  const p = n.children?.[0]?.children?.[1];
  return p?.type === 'ParamList' ? (p.children ?? []) : [];
}

/** A plain member name the fast path reads: lower-case first letter, letters and digits only. */
function plainMember(n: Ast): string | undefined {
  const t = n.children?.[0]?.text ?? n.text;
  if (t === undefined || t.length === 0) return undefined;
  const c0 = t.charCodeAt(0);
  if (c0 < 0x61 || c0 > 0x7a) return undefined;
  for (let i = 1; i < t.length; i++) {
    const c = t.charCodeAt(i);
    if (!((c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a) || (c >= 0x30 && c <= 0x39) || c === 0x5f)) return undefined;
  }
  return t;
}

/** A bare type name argument (`Quantity`, `dateTime`), or undefined for a qualified or odd one. */
function bareType(n: Ast | undefined): string | undefined {
  const t = n?.text;
  if (t === undefined || t.length === 0 || t.includes('.') || t.includes('`')) return undefined;
  return t;
}

/** The value of a string literal without escapes, or undefined. */
function stringLiteral(n: Ast): string | undefined {
  if (n.type !== 'LiteralTerm') return undefined;
  const s = n.children?.[0];
  if (s?.type !== 'StringLiteral' || s.text === undefined) return undefined;
  const t = s.text;
  if (t.length < 2 || !t.startsWith("'") || !t.endsWith("'") || t.includes('\\')) return undefined;
  return t.slice(1, -1);
}

const isPrimitiveType = (t: string | undefined): boolean => t !== undefined && (t.startsWith('System.') || (t.charCodeAt(0) >= 0x61 && t.charCodeAt(0) <= 0x7a));

/**
 * Compiles an expression on a focus described by `focus` to a fast closure, or returns undefined
 * when it is outside the subset. `constants` are the view's constants usable as values.
 */
export function compileFast(ast: Ast, focus: StaticNode, constants: ReadonlyMap<string, FastConstant>): FastExpr | undefined {
  const terms = flatten(ast);
  if (!terms || terms.length === 0) return undefined;
  const steps: Step[] = [];
  let cur: StaticNode = focus;
  let i = 0;
  const first = terms[0]!;
  // The first term: what the chain starts from.
  if (first.type === 'ThisInvocation') {
    i = 1;
  } else if (first.type === 'LiteralTerm' || first.type === 'ExternalConstantTerm') {
    if (terms.length !== 1) return undefined;
    if (first.type === 'LiteralTerm') {
      const s = stringLiteral(first);
      if (s === undefined) return undefined;
      return chain([valueStep(() => s)], { path: undefined, type: 'System.String' });
    }
    const name = variableName(first);
    if (name === 'rowIndex') return chain([valueStep((env) => env.rowIndex)], { path: undefined, type: 'System.Integer' });
    if (name === undefined || !constants.has(name)) return undefined;
    const v = constants.get(name)!;
    return chain([valueStep(() => v)], { path: undefined, type: undefined });
  } else if (first.type === 'MemberInvocation') {
    const t = first.children?.[0]?.text ?? '';
    if (focus.root && t === focus.resourceType) {
      i = 1; // `Observation.code` on an Observation: the resource itself.
    }
  } else if (first.type === 'FunctionInvocation') {
    if (!(focus.root && fnName(first) === 'getResourceKey' && fnParams(first).length === 0)) return undefined;
    steps.push(resourceKeyStep);
    cur = { path: undefined, type: 'System.String' };
    i = 1;
  } else {
    return undefined;
  }
  // Member steps from a primitive would read its extensions (`_value`): left to fhirpath.
  for (; i < terms.length; i++) {
    const t = terms[i]!;
    if (t.type === 'MemberInvocation') {
      const key = plainMember(t);
      if (key === undefined || cur.path === undefined || isPrimitiveType(cur.type)) return undefined;
      const info = memberInfo(cur.path, key);
      if (info.choice) {
        const next = terms[i + 1];
        let accepted: boolean[];
        if (next?.type === 'FunctionInvocation' && fnName(next) === 'ofType') {
          const x = bareType(fnParams(next)[0]);
          if (x === undefined || info.choice.some((c) => c.type === undefined)) return undefined;
          accepted = info.choice.map((c) => passesOfType(c.type!, x));
          i++;
        } else {
          accepted = info.choice.map(() => true);
        }
        const kept = info.choice.filter((_c, k) => accepted[k]);
        steps.push(choiceStep(key, info.choice.map((c) => c.suffix), accepted));
        cur = kept.length === 1 ? { path: kept[0]!.path, type: kept[0]!.type } : { path: undefined, type: undefined };
        if (kept.length === 1 && kept[0]!.type !== undefined && isResourceTypeName(kept[0]!.type)) return undefined;
      } else {
        if (info.type !== undefined && isResourceTypeName(info.type)) return undefined;
        steps.push(memberStep(key));
        cur = { path: info.path, type: info.type };
      }
      continue;
    }
    if (t.type === 'Indexer') {
      const lit = t.children?.[0];
      const num = lit?.type === 'TermExpression' ? lit.children?.[0] : undefined;
      const text = num?.type === 'LiteralTerm' && num.children?.[0]?.type === 'NumberLiteral' ? num.children[0]!.text : undefined;
      if (text === undefined || !/^[0-9]{1,9}$/.test(text)) return undefined;
      steps.push(indexStep(Number(text)));
      continue;
    }
    if (t.type !== 'FunctionInvocation') return undefined;
    const name = fnName(t);
    const params = fnParams(t);
    if (name === 'first' && params.length === 0) steps.push(firstStep);
    else if (name === 'exists' && params.length === 0) {
      steps.push(existsStep);
      cur = { path: undefined, type: 'boolean' };
    } else if (name === 'empty' && params.length === 0) {
      steps.push(emptyStep);
      cur = { path: undefined, type: 'boolean' };
    } else if (name === 'ofType' && params.length === 1) {
      const x = bareType(params[0]);
      if (x === undefined || cur.type === undefined) return undefined;
      steps.push(passesOfType(cur.type, x) ? identityStep : nothingStep);
    } else if (name === 'getReferenceKey' && params.length <= 1) {
      let type: string | undefined;
      if (params.length === 1) {
        type = bareType(params[0]);
        if (type === undefined) return undefined;
      }
      steps.push(referenceKeyStep(type));
      cur = { path: undefined, type: 'System.String' };
    } else if (name === 'where' && params.length === 1) {
      if (i === 0 || cur.path === undefined) return undefined;
      const cond = compileCondition(params[0]!, cur, constants);
      if (!cond) return undefined;
      steps.push(whereStep(cond));
    } else {
      return undefined;
    }
  }
  if (steps.length === 0) steps.push(identityStep);
  return chain(steps, cur);
}

type Cond = (d: unknown, x: unknown, env: FastEnv) => boolean;

/** `a.b = 'x'` (string-typed `a.b`, a literal or string constant), and `and`/`or` of such: true exactly where fhirpath's `where` keeps the item. */
function compileCondition(n: Ast, item: StaticNode, constants: ReadonlyMap<string, FastConstant>): Cond | undefined {
  while ((n.type === 'TermExpression' || n.type === 'ParenthesizedTerm') && n.children?.length === 1) n = n.children[0]!;
  if (n.type === 'AndExpression' || (n.type === 'OrExpression' && n.text === 'or')) {
    const l = n.children?.[0] && compileCondition(n.children[0], item, constants);
    const r = n.children?.[1] && compileCondition(n.children[1], item, constants);
    if (!l || !r) return undefined;
    return n.type === 'AndExpression' ? (d, x, env) => l(d, x, env) && r(d, x, env) : (d, x, env) => l(d, x, env) || r(d, x, env);
  }
  if (n.type !== 'EqualityExpression' || n.text !== '=' || n.children?.length !== 2) return undefined;
  const [lhs, rhs] = n.children as [Ast, Ast];
  // The left side: member steps only, from the item, ending on a string-typed element.
  const terms = flatten(lhs);
  if (!terms || terms.length === 0) return undefined;
  const keys: string[] = [];
  let cur: StaticNode = item;
  for (const t of terms) {
    const key = t.type === 'MemberInvocation' ? plainMember(t) : undefined;
    if (key === undefined || cur.path === undefined || isPrimitiveType(cur.type)) return undefined;
    const info = memberInfo(cur.path, key);
    if (info.choice || (info.type !== undefined && isResourceTypeName(info.type))) return undefined;
    keys.push(key);
    cur = { path: info.path, type: info.type };
  }
  if (cur.type === undefined || !STRING_LIKE.has(cur.type)) return undefined;
  // The right side: a string.
  let want: string | undefined;
  let r = rhs;
  while (r.type === 'TermExpression' && r.children?.length === 1) r = r.children[0]!;
  if (r.type === 'LiteralTerm') want = stringLiteral(r);
  else if (r.type === 'ExternalConstantTerm') {
    const name = variableName(r);
    const v = name !== undefined ? constants.get(name) : undefined;
    if (typeof v === 'string') want = v;
  }
  if (want === undefined) return undefined;
  const lhsChain = chain(keys.map(memberStep), cur);
  const target = want;
  // fhirpath: `[node] = ['x']` is true only for exactly one node whose value is 'x'.
  return (d, x, env) => lhsChain.run(d, x, env) === 1 && lhsChain.D[0] === target;
}

/**
 * One result value as fhirpath.js gives it with `resolveInternalTypes`: a precise decimal (from
 * `parseJsonKeepingDecimals`) as its number. Callers drop null values first, as fhirpath does.
 */
export function finalValue(v: unknown): unknown {
  return v instanceof FP_Decimal ? v.toJSON() : v;
}
