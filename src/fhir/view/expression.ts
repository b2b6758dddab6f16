/**
 * FHIRPath expressions of a view: parsed and checked once when the view is compiled (unknown
 * functions, wrong argument counts, undefined constants, unknown types are errors naming the
 * view's JSON pointer, never fhirpath's own text or stack), then compiled by fhirpath.js.
 */
import fhirpath from 'fhirpath';
import { r4, isKnownTypeSpecifier } from './model.js';
import { FUNCTION_ARITY, USER_FUNCTIONS } from './functions.js';
import { R4_RESOURCE_TYPES } from '../resource-types.js';

/** A node of fhirpath.js's parse tree (`fhirpath.parse`). */
export interface Ast {
  type: string;
  text?: string;
  delimitedText?: string;
  atRoot?: number;
  start?: { line: number; column: number };
  children?: Ast[];
}

/** One problem found in a view, at a JSON pointer into it. */
export interface Problem {
  pointer: string;
  message: string;
}

/** Variables every expression may use besides the view's constants. */
export const BUILTIN_VARIABLES: ReadonlySet<string> = new Set(['rowIndex', 'resource', 'rootResource', 'context', 'ucum']);

/** A compiled fhirpath.js evaluator. */
export type FhirpathFn = (input: unknown, vars: Record<string, unknown>) => unknown[];

const OPTIONS_RESOLVED = { userInvocationTable: USER_FUNCTIONS, resolveInternalTypes: true } as const;
const OPTIONS_NODES = { userInvocationTable: USER_FUNCTIONS, resolveInternalTypes: false } as const;

/**
 * Compiles an expression (already checked) with fhirpath.js and the R4 model. `nodes` keeps
 * fhirpath's nodes in the result (for `forEach` and `repeat`, whose items are the input of further
 * expressions and must keep their type); otherwise the result holds plain JSON values.
 */
export function compileFhirpath(text: string, nodes: boolean): FhirpathFn {
  return fhirpath.compile(text, r4, nodes ? OPTIONS_NODES : OPTIONS_RESOLVED) as unknown as FhirpathFn;
}

/**
 * Parses an expression and checks what can be checked before any data: every function exists and
 * gets a number of arguments it takes, every `%name` is a constant of the view or a built-in
 * variable, every type name is an R4 or System type. Problems go to `problems`; returns the parse
 * tree when there were none.
 */
export function checkExpression(text: string, pointer: string, constants: ReadonlySet<string>, problems: Problem[]): Ast | undefined {
  if (text.trim() === '') {
    problems.push({ pointer, message: 'empty FHIRPath expression' });
    return undefined;
  }
  let ast: Ast;
  try {
    ast = fhirpath.parse(text) as Ast;
  } catch (e) {
    problems.push({ pointer, message: `invalid FHIRPath expression (${parseReason(e)})` });
    return undefined;
  }
  const before = problems.length;
  walk(ast, pointer, constants, problems);
  return problems.length === before ? ast : undefined;
}

/**
 * The parser's reason in a few words, and where: fhirpath's message is antlr's
 * `line: 1; column: 0; message: token recognition error at: '@@'` followed by a token list.
 */
function parseReason(e: unknown): string {
  const msg = e instanceof Error ? e.message : '';
  const m = msg.indexOf('message: ');
  let reason = m >= 0 ? msg.slice(m + 9) : 'syntax error';
  const nl = reason.indexOf('\n');
  if (nl >= 0) reason = reason.slice(0, nl);
  const exp = reason.indexOf(' expecting');
  if (exp >= 0) reason = reason.slice(0, exp);
  if (reason.length > 80) reason = `${reason.slice(0, 77)}...`;
  const c = msg.indexOf('column: ');
  const col = c >= 0 ? Number.parseInt(msg.slice(c + 8), 10) : Number.NaN;
  return Number.isFinite(col) ? `${reason}, at character ${col + 1}` : reason;
}

const at = (n: Ast): string => (n.start ? ` (at character ${n.start.column})` : '');

/** The name in an `Identifier` node, without the backticks of a delimited one. */
export function identifierName(text: string | undefined): string {
  if (text === undefined) return '';
  return text.length >= 2 && text.startsWith('`') && text.endsWith('`') ? text.slice(1, -1) : text;
}

/** The variable name of an `ExternalConstantTerm` (`%name`, %`name`, %'name'). */
export function variableName(n: Ast): string | undefined {
  if (n.delimitedText !== undefined) {
    const d = n.delimitedText;
    if (d.startsWith("'")) return d.length >= 2 && d.endsWith("'") && !d.includes('\\') ? d.slice(1, -1) : undefined;
    return d;
  }
  return n.text;
}

function walk(n: Ast, pointer: string, constants: ReadonlySet<string>, problems: Problem[]): void {
  if (n.type === 'FunctionInvocation') {
    const fn = n.children?.[0];
    const name = identifierName(fn?.children?.[0]?.text);
    const params = fn?.children?.[1]?.type === 'ParamList' ? (fn.children[1]!.children ?? []) : [];
    const arity = FUNCTION_ARITY.get(name);
    if (arity === undefined) {
      problems.push({ pointer, message: `unknown function "${name}"${at(n)}` });
    } else if (!arity.counts.includes(params.length) && !(arity.min !== undefined && params.length >= arity.min)) {
      const want = arity.min !== undefined ? `at least ${arity.min}` : arity.counts.join(' or ');
      problems.push({ pointer, message: `function "${name}" takes ${want} argument(s), not ${params.length}${at(n)}` });
    } else if ((name === 'ofType' || name === 'is' || name === 'as') && params.length === 1) {
      const t = params[0]!.text ?? '';
      if (!isKnownTypeSpecifier(t)) problems.push({ pointer, message: `${name}(): unknown type "${t}"${at(n)}` });
    } else if (name === 'getReferenceKey' && params.length === 1) {
      const t = params[0]!.text ?? '';
      const bare = t.startsWith('FHIR.') ? t.slice(5) : t;
      if (!R4_RESOURCE_TYPES.has(bare)) problems.push({ pointer, message: `getReferenceKey(): "${t}" is not an R4 resource type${at(n)}` });
    }
  } else if (n.type === 'TypeSpecifier' && n.text !== undefined && !isKnownTypeSpecifier(n.text)) {
    problems.push({ pointer, message: `unknown type "${n.text}"${at(n)}` });
  } else if (n.type === 'ExternalConstantTerm') {
    const name = variableName(n);
    if (name === undefined || (!constants.has(name) && !BUILTIN_VARIABLES.has(name))) {
      problems.push({ pointer, message: `undefined constant %${name ?? n.delimitedText ?? ''}${at(n)}` });
    }
    return;
  }
  for (const c of n.children ?? []) walk(c, pointer, constants, problems);
}
