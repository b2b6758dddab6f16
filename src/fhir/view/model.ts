/**
 * What the view engine asks of the FHIR R4 model that ships with `fhirpath`: which names are
 * types, how a path's type is found, and when `ofType(X)` keeps a node. The navigation rules here
 * copy fhirpath.js 5.2's own (`util.makeChildResNodes`, `TypeInfo.isConvertibleTo`), so the fast
 * path can decide at compile time what fhirpath decides per node; `fast-path.test.ts` checks that
 * the two agree on every expression the fast path takes.
 */
import model from 'fhirpath/fhir-context/r4';
import type { Model } from 'fhirpath';

/** The R4 model; its type declaration omits `availableTypes` (every type name), which the data has. */
export const r4 = model as Model & { availableTypes: ReadonlySet<string> };

/** FHIRPath's System types (fhirpath.js `availableSystemTypes`). */
export const SYSTEM_TYPES: ReadonlySet<string> = new Set(['Boolean', 'String', 'Integer', 'Long', 'Decimal', 'Date', 'DateTime', 'Time', 'Quantity']);

/** FHIR primitive types that FHIRPath converts to a System type (fhirpath.js `fhir2SystemAutomaticConversion`). */
const FHIR_TO_SYSTEM: Readonly<Record<string, string>> = {
  boolean: 'Boolean',
  string: 'String', uri: 'String', code: 'String', oid: 'String', id: 'String', uuid: 'String', markdown: 'String', base64Binary: 'String',
  integer: 'Integer', unsignedInt: 'Integer', positiveInt: 'Integer',
  integer64: 'Long',
  decimal: 'Decimal',
  date: 'DateTime', dateTime: 'DateTime', instant: 'DateTime',
  time: 'Time',
};

/** FHIR types whose values compare as plain strings under `=` (no date or quantity conversion). */
export const STRING_LIKE: ReadonlySet<string> = new Set(['string', 'uri', 'url', 'canonical', 'code', 'oid', 'id', 'uuid', 'markdown', 'base64Binary', 'System.String']);

/** Whether `type` is `ancestor` or descends from it in the R4 model. */
export function isA(type: string, ancestor: string): boolean {
  let t: string | undefined = type;
  while (t !== undefined) {
    if (t === ancestor) return true;
    t = r4.type2Parent[t];
  }
  return false;
}

/** Whether `name` is a concrete or abstract R4 resource type (`Patient`, `Resource`, `DomainResource`). */
export function isResourceTypeName(name: string): boolean {
  return r4.availableTypes.has(name) && isA(name, 'Resource');
}

/** Whether a type specifier (`Quantity`, `FHIR.Quantity`, `System.String`) names a type fhirpath knows. */
export function isKnownTypeSpecifier(text: string): boolean {
  const dot = text.indexOf('.');
  if (dot < 0) return SYSTEM_TYPES.has(text) || r4.availableTypes.has(text);
  const ns = text.slice(0, dot);
  const name = text.slice(dot + 1);
  if (name.includes('.')) return false;
  if (ns === 'System') return SYSTEM_TYPES.has(name);
  if (ns === 'FHIR') return r4.availableTypes.has(name);
  return false;
}

/**
 * Whether a node whose model type is `nodeType` (a FHIR type name, or `System.X`) passes
 * `ofType(name)` for a bare type name, as fhirpath's `TypeInfo.isConvertibleTo` decides it.
 */
export function passesOfType(nodeType: string, name: string): boolean {
  if (nodeType.startsWith('System.')) return nodeType.slice(7) === name;
  if (FHIR_TO_SYSTEM[nodeType] === name) return true;
  return isA(nodeType, name);
}

/** One member step as fhirpath's navigation resolves it from a node at `path`. */
export interface MemberInfo {
  /** The element is a choice (`value[x]`): these are the JSON suffixes tried in order, and each one's node path and type. */
  choice?: Array<{ suffix: string; path: string; type: string | undefined }>;
  /** For a plain element: the path of the child nodes (what further steps navigate from) and their model type. */
  path?: string;
  type?: string | undefined;
}

/** How fhirpath navigates member `key` from a node whose path is `path` (see `util.makeChildResNodes`). */
export function memberInfo(path: string, key: string): MemberInfo {
  let childPath = `${path}.${key}`;
  childPath = r4.pathsDefinedElsewhere[childPath] ?? childPath;
  const choices = r4.choiceTypePaths[childPath];
  if (choices) {
    return {
      choice: choices.map((suffix) => {
        const p = childPath + suffix;
        return { suffix, path: r4.path2TypeWithoutElements[p] ?? p, type: r4.path2Type[p] };
      }),
    };
  }
  if (key === 'extension') childPath = 'Extension';
  return { path: r4.path2TypeWithoutElements[childPath] ?? childPath, type: r4.path2Type[childPath] };
}
