/**
 * A small structural validator of FHIR R4 resources against the official StructureDefinitions
 * (vendored in test/fixtures/fhir/r4, see SOURCES.md), for tests of what medfit writes
 * (RiskAssessment Bundles, OperationOutcomes). It checks what a FHIR server's validator checks
 * first, from the definitions' snapshots only:
 *
 * - every JSON property is an element of the definition (choice elements such as
 *   `occurrence[x]` by their typed names, `occurrenceDateTime`; `_name` primitive extensions),
 * - cardinality (`min`, `max`; repeating elements as arrays, single ones not; no empty arrays),
 * - value types: complex types recursively by their own definitions, inline backbone elements,
 *   `Resource` by the contained resource's type, primitives by JSON type and their regex,
 * - required bindings of `code` elements (the ValueSets and CodeSystems vendored beside them),
 * - every `error` invariant (`constraint`) of the elements met and of their types' roots, as the
 *   definition's FHIRPath expression evaluated by HL7's fhirpath on the resource (ras-2, ref-1,
 *   bdl-*, ele-1, dom-*...).
 *
 * It does not resolve profiles, terminology beyond required bindings, or references.
 */
import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import fhirpath from 'fhirpath';
import r4 from 'fhirpath/fhir-context/r4/index.js';
import { fixture } from './helpers.js';

interface ElementType {
  code: string;
  extension?: Array<{ url: string; valueString?: string }>;
}

interface ElementDefinition {
  path: string;
  min: number;
  max: string;
  type?: ElementType[];
  contentReference?: string;
  binding?: { strength: string; valueSet?: string };
  constraint?: Array<{ key: string; severity: string; expression?: string; human: string }>;
}

interface StructureDefinition {
  resourceType: 'StructureDefinition';
  id: string;
  type: string;
  kind: 'primitive-type' | 'complex-type' | 'resource' | 'logical';
  snapshot: { element: ElementDefinition[] };
}

interface Concept {
  code: string;
  concept?: Concept[];
}

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
type JsonObject = { [k: string]: Json };

const REGEX_EXT = 'http://hl7.org/fhir/StructureDefinition/regex';
const SYSTEM_STRING = 'http://hl7.org/fhirpath/System.String';

function readBundle(name: string): Array<Record<string, unknown>> {
  const bundle = JSON.parse(gunzipSync(readFileSync(fixture(name))).toString('utf8')) as { entry: Array<{ resource: Record<string, unknown> }> };
  return bundle.entry.map((e) => e.resource);
}

/** The vendored definitions, by type name; the codes of each required binding's ValueSet, by canonical URL. */
class Definitions {
  readonly types = new Map<string, StructureDefinition>();
  /** Children of each element path, per definition: `Bundle.entry` → [Bundle.entry.id, ...]. */
  private readonly children = new Map<StructureDefinition, Map<string, ElementDefinition[]>>();
  private readonly valueSets = new Map<string, Set<string> | undefined>();

  constructor() {
    for (const r of readBundle('fhir/r4/structure-definitions.json.gz')) {
      const sd = r as unknown as StructureDefinition;
      this.types.set(sd.type, sd);
      const byParent = new Map<string, ElementDefinition[]>();
      for (const el of sd.snapshot.element) {
        const dot = el.path.lastIndexOf('.');
        if (dot < 0) continue;
        const parent = el.path.slice(0, dot);
        byParent.set(parent, [...(byParent.get(parent) ?? []), el]);
      }
      this.children.set(sd, byParent);
    }
    const codeSystems = new Map<string, Set<string>>();
    const sets: Array<{ url: string; include: Array<{ system?: string; concept?: Array<{ code: string }> }> }> = [];
    for (const r of readBundle('fhir/r4/valuesets.json.gz')) {
      if (r['resourceType'] === 'CodeSystem') {
        const codes = new Set<string>();
        const walk = (cs: Concept[] | undefined) => cs?.forEach((c) => (codes.add(c.code), walk(c.concept)));
        walk(r['concept'] as Concept[] | undefined);
        codeSystems.set(r['url'] as string, codes);
      } else if (r['resourceType'] === 'ValueSet') {
        sets.push({ url: r['url'] as string, include: ((r['compose'] as { include?: [] } | undefined)?.include ?? []) as [] });
      }
    }
    for (const vs of sets) {
      let codes: Set<string> | undefined = new Set<string>();
      for (const inc of vs.include) {
        if (inc.concept) for (const c of inc.concept) codes.add(c.code);
        else if (inc.system && codeSystems.has(inc.system)) for (const c of codeSystems.get(inc.system)!) codes.add(c);
        // A system defined by a grammar (BCP 13 MIME types) cannot be listed: the binding is unchecked.
        else codes = undefined;
        if (!codes) break;
      }
      this.valueSets.set(vs.url, codes);
    }
  }

  childrenOf(sd: StructureDefinition, path: string): ElementDefinition[] {
    return this.children.get(sd)!.get(path) ?? [];
  }

  element(sd: StructureDefinition, path: string): ElementDefinition | undefined {
    return sd.snapshot.element.find((e) => e.path === path);
  }

  /** The codes of a required binding's ValueSet; undefined when it cannot be listed; throws when not vendored. */
  codes(valueSet: string): Set<string> | undefined {
    const url = valueSet.split('|')[0]!;
    if (!this.valueSets.has(url)) throw new Error(`ValueSet ${url} is not vendored in test/fixtures/fhir/r4/valuesets.json.gz`);
    return this.valueSets.get(url);
  }
}

let defs: Definitions | undefined;

/** A problem the validator found: where (a FHIRPath-like location) and what. */
export interface ValidationProblem {
  path: string;
  message: string;
}

/** One invariant to evaluate: on the resource `root`, at `at` (a FHIRPath to the node, '' for the root). */
interface Invariant {
  root: JsonObject;
  at: string;
  key: string;
  expression: string;
  human: string;
}

const isObject = (v: Json | undefined): v is JsonObject => typeof v === 'object' && v !== null && !Array.isArray(v);
const capitalise = (s: string) => s.charAt(0).toUpperCase() + s.slice(1);
const nameOf = (el: ElementDefinition) => el.path.slice(el.path.lastIndexOf('.') + 1);

/**
 * Validates a resource (of any vendored resource type, e.g. a Bundle of RiskAssessments with each
 * entry's resource validated as its own type) and returns every problem found (empty: valid).
 */
export function validateResource(resource: unknown): ValidationProblem[] {
  defs ??= new Definitions();
  const problems: ValidationProblem[] = [];
  const invariants: Invariant[] = [];
  validateResourceNode(defs, resource as Json, 'resource', problems, invariants);
  for (const inv of invariants) {
    const expr = inv.at === '' ? inv.expression : `(${inv.at}).all(${inv.expression})`;
    let result: unknown[];
    try {
      // ref-1 calls trace(): its output is not wanted in test logs.
      result = fhirpath.evaluate(inv.root, expr, { resource: inv.root, rootResource: inv.root }, r4, { traceFn: () => {} }) as unknown[];
    } catch (e) {
      problems.push({ path: inv.at || (inv.root['resourceType'] as string), message: `invariant ${inv.key} could not be evaluated: ${(e as Error).message}` });
      continue;
    }
    if (!(result.length === 1 && result[0] === true) && !(result.length === 0)) {
      problems.push({ path: `${inv.root['resourceType'] as string}${inv.at ? `.${inv.at}` : ''}`, message: `invariant ${inv.key} fails: ${inv.human}` });
    }
  }
  return problems;
}

function validateResourceNode(d: Definitions, value: Json, where: string, problems: ValidationProblem[], invariants: Invariant[]): void {
  if (!isObject(value) || typeof value['resourceType'] !== 'string') {
    problems.push({ path: where, message: 'expected a resource (an object with resourceType)' });
    return;
  }
  const sd = d.types.get(value['resourceType']);
  if (!sd || sd.kind !== 'resource') {
    problems.push({ path: where, message: `no vendored definition of resource type ${value['resourceType']}` });
    return;
  }
  const root = d.element(sd, sd.type)!;
  for (const c of root.constraint ?? []) if (c.severity === 'error' && c.expression) invariants.push({ root: value, at: '', key: c.key, expression: c.expression, human: c.human });
  validateChildren(d, sd, sd.type, value, sd.type, '', value, problems, invariants, true);
}

/**
 * The children of an object `value` at element `path` of `sd`: unknown properties, cardinality,
 * then each value by its type. `where` names the place in messages; `fp` is the FHIRPath from
 * `root` to `value` (for invariants).
 */
function validateChildren(
  d: Definitions,
  sd: StructureDefinition,
  path: string,
  value: JsonObject,
  where: string,
  fp: string,
  root: JsonObject,
  problems: ValidationProblem[],
  invariants: Invariant[],
  isResource = false,
): void {
  const children = d.childrenOf(sd, path);
  const seen = new Set<string>();
  // Which element each property is, and of what type for choice elements.
  const byKey = new Map<string, { el: ElementDefinition; type?: string }>();
  for (const el of children) {
    const name = nameOf(el);
    if (name.endsWith('[x]')) {
      const base = name.slice(0, -3);
      for (const t of el.type ?? []) byKey.set(base + capitalise(t.code), { el, type: t.code });
    } else byKey.set(name, { el });
  }
  for (const key of Object.keys(value)) {
    if (isResource && key === 'resourceType') continue;
    const primitiveExt = key.startsWith('_') ? key.slice(1) : undefined;
    const hit = byKey.get(primitiveExt ?? key);
    if (!hit) {
      problems.push({ path: `${where}.${key}`, message: `not an element of ${path}` });
      continue;
    }
    if (primitiveExt !== undefined) continue;
    seen.add(key);
  }
  for (const el of children) {
    const name = nameOf(el);
    const keys = name.endsWith('[x]') ? (el.type ?? []).map((t) => name.slice(0, -3) + capitalise(t.code)).filter((k) => k in value) : name in value ? [name] : [];
    if (keys.length > 1) problems.push({ path: `${where}.${name}`, message: `only one of ${keys.join(', ')} may be present` });
    const key = keys[0];
    const raw = key !== undefined ? value[key] : undefined;
    const repeats = el.max !== '1' && el.max !== '0';
    if (raw !== undefined && Array.isArray(raw) !== repeats) {
      problems.push({ path: `${where}.${key!}`, message: repeats ? `repeats (max ${el.max}): must be an array` : 'does not repeat: must not be an array' });
    }
    const items: Json[] = raw === undefined ? [] : Array.isArray(raw) ? raw : [raw];
    if (Array.isArray(raw) && raw.length === 0) problems.push({ path: `${where}.${key!}`, message: 'an empty array (FHIR JSON omits empty elements)' });
    if (items.length < el.min) problems.push({ path: `${where}.${name}`, message: `is required (min ${el.min}), found ${items.length}` });
    if (el.max !== '*' && items.length > Number(el.max)) problems.push({ path: `${where}.${key!}`, message: `at most ${el.max}, found ${items.length}` });
    if (key === undefined) continue;
    const choiceType = name.endsWith('[x]') ? (el.type ?? []).find((t) => name.slice(0, -3) + capitalise(t.code) === key)!.code : undefined;
    // FHIRPath reaches a choice element by its name without the type (`probability`).
    const fpName = name.endsWith('[x]') ? name.slice(0, -3) : name;
    items.forEach((item, i) => {
      const itemWhere = Array.isArray(raw) ? `${where}.${key}[${i}]` : `${where}.${key}`;
      const itemFp = `${fp ? `${fp}.` : ''}${fpName}${Array.isArray(raw) ? `[${i}]` : ''}`;
      for (const c of el.constraint ?? []) if (c.severity === 'error' && c.expression) invariants.push({ root, at: itemFp, key: c.key, expression: c.expression, human: c.human });
      validateValue(d, sd, el, choiceType, item, itemWhere, itemFp, root, problems, invariants);
    });
  }
}

function validateValue(
  d: Definitions,
  sd: StructureDefinition,
  el: ElementDefinition,
  choiceType: string | undefined,
  item: Json,
  where: string,
  fp: string,
  root: JsonObject,
  problems: ValidationProblem[],
  invariants: Invariant[],
): void {
  if (el.contentReference) {
    // `#Bundle.link`: the element is defined (children and all) at another path of the same definition.
    if (!isObject(item)) return void problems.push({ path: where, message: 'expected an object' });
    return validateChildren(d, sd, el.contentReference.slice(1), item, where, fp, root, problems, invariants);
  }
  const types = el.type ?? [];
  const code = choiceType ?? (types.length === 1 ? types[0]!.code : undefined);
  if (code === undefined) return void problems.push({ path: where, message: `cannot tell the type of ${el.path}` });
  if (code === SYSTEM_STRING) {
    if (typeof item !== 'string') problems.push({ path: where, message: 'expected a string' });
    return;
  }
  if (code === 'BackboneElement' || code === 'Element') {
    if (!isObject(item)) return void problems.push({ path: where, message: 'expected an object' });
    return validateChildren(d, sd, el.path, item, where, fp, root, problems, invariants);
  }
  if (code === 'Resource') return validateResourceNode(d, item, where, problems, invariants);
  const typeSd = d.types.get(code);
  if (!typeSd) return void problems.push({ path: where, message: `no vendored definition of type ${code}` });
  if (typeSd.kind === 'primitive-type') {
    checkPrimitive(d, typeSd, item, where, problems);
    if (el.binding?.strength === 'required' && el.binding.valueSet && typeof item === 'string') {
      const codes = d.codes(el.binding.valueSet);
      if (codes && !codes.has(item)) problems.push({ path: where, message: `"${item}" is not in the required ValueSet ${el.binding.valueSet}` });
    }
    return;
  }
  if (!isObject(item)) return void problems.push({ path: where, message: `expected a ${code} (an object)` });
  const typeRoot = d.element(typeSd, typeSd.type)!;
  for (const c of typeRoot.constraint ?? []) if (c.severity === 'error' && c.expression && c.key !== 'ele-1') invariants.push({ root, at: fp, key: c.key, expression: c.expression, human: c.human });
  validateChildren(d, typeSd, typeSd.type, item, where, fp, root, problems, invariants);
}

function checkPrimitive(d: Definitions, typeSd: StructureDefinition, item: Json, where: string, problems: ValidationProblem[]): void {
  const t = typeSd.type;
  const numeric = t === 'decimal' || t === 'integer' || t === 'unsignedInt' || t === 'positiveInt';
  if (t === 'boolean' ? typeof item !== 'boolean' : numeric ? typeof item !== 'number' || !Number.isFinite(item) : typeof item !== 'string') {
    return void problems.push({ path: where, message: `expected a ${t} (JSON ${t === 'boolean' ? 'boolean' : numeric ? 'number' : 'string'})` });
  }
  if (t !== 'decimal' && numeric && !Number.isInteger(item)) return void problems.push({ path: where, message: `expected a whole number (${t})` });
  if (typeof item === 'string' && item.trim() === '' && t !== 'xhtml') problems.push({ path: where, message: `an empty ${t}` });
  const valueEl = d.element(typeSd, `${t}.value`);
  const regex = valueEl?.type?.[0]?.extension?.find((x) => x.url === REGEX_EXT)?.valueString;
  if (regex && !new RegExp(`^(?:${regex})$`).test(String(item))) problems.push({ path: where, message: `not a valid ${t}` });
}
