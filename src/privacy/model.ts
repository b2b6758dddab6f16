/**
 * What de-identification knows of FHIR R4: for each resource type, data type and backbone
 * element, what to do with each of its child elements, compiled once from HL7 fhirpath.js's R4
 * model (`fhirpath/fhir-context/r4`: `path2Type`, the type of every element path, choice types
 * spelled out as `valueQuantity`, `valueString`...; `pathsDefinedElsewhere` for recursive
 * backbones such as `Questionnaire.item.item`; `type2Parent`, which names the resource types).
 *
 * The rules are by element TYPE, with a short list of rules by PATH where the type alone does not
 * say enough (see `PATH_RULES`); an element the model does not know is dropped, since nothing
 * vouches for what it holds. Compiled lazily, a type at a time, into maps the walker (fhir.ts)
 * reads with one lookup per element.
 */
import r4 from 'fhirpath/fhir-context/r4';

/**
 * What the walker does with an element: one number per rule. (An object read once into local
 * constants by its users, rather than exported constants: a module transform that turns imports
 * into getters, as test runners do, would otherwise put a call on every element of the walk.)
 */
export const Kind = {
  /** Kept as it is. */
  KEEP: 0,
  /** Removed, with its `_element` sibling. */
  DROP: 1,
  /** A `date` or `dateTime`: shifted, or cut to the year. */
  DATE: 2,
  /** An `instant`: shifted; dropped under `dates: 'year'` (an instant must carry a full time). */
  INSTANT: 3,
  /** `Resource.id`: a pseudonym. */
  RESOURCE_ID: 4,
  /** `Reference.reference`: rebuilt as `Type/<pseudonym>` or `urn:uuid:<pseudonym>`; other shapes removed. */
  REFERENCE: 5,
  /** `Identifier.value`: a pseudonym (the system is kept). */
  IDENTIFIER_VALUE: 6,
  /** Another identifying `id`-typed value (a DICOM UID): a pseudonym. */
  UID: 7,
  /** A complex element or backbone element: walked with its own map. */
  COMPLEX: 8,
  /** CodeableConcept: walked; its `text` kept only when it repeats a coding's display. */
  CODEABLE_CONCEPT: 9,
  /** Address: state, country, use, type and period; postalCode as ZIP3; the rest removed. */
  ADDRESS: 10,
  /** Age: walked like a Quantity; over 89 years becomes 90 (`>=`); a unit it cannot read counts as years. */
  AGE: 11,
  /** Extension: walked; dropped when nothing but its url is left, or when it is a geolocation. */
  EXTENSION: 12,
  /** `contained`: resources of the container's patient, walked with its date offset. */
  CONTAINED: 13,
  /** A resource inside another but of its own (Bundle.entry.resource, Parameters): de-identified on its own. */
  RESOURCE: 14,
  /** `Bundle.entry.fullUrl`, `Bundle.entry.response.location`: rebuilt like a reference. */
  FULL_URL: 15,
  /** `Bundle.entry.request.url`: a type alone (POST), or mapped like a reference. */
  REQUEST_URL: 16,
  /** `Bundle.entry.request.ifNoneExist`: a search query; identifier values pseudonymised. */
  QUERY: 17,
  /** `birthDate`: ages over 89 pooled (a year alone, not shifted), else like any date. */
  BIRTH_DATE: 18,
  /**
   * Quantity and its kin (not Age): walked; a unit that is not a UCUM code nor short is removed,
   * and a time quantity over 89 years (an age kept as an Observation value) becomes 90 years.
   */
  QUANTITY: 19,
  /**
   * `QuestionnaireResponse.item.answer.valueCoding`: kept only with a `system` and a `code` that
   * reads as a code (no spaces); its `display` is removed (answers are not always terminology).
   */
  ANSWER_CODING: 20,
} as const;

const { KEEP, DROP, DATE, INSTANT, RESOURCE_ID, REFERENCE, IDENTIFIER_VALUE, UID, COMPLEX, CODEABLE_CONCEPT, ADDRESS, AGE, EXTENSION, CONTAINED, RESOURCE, FULL_URL, REQUEST_URL, QUERY, BIRTH_DATE, QUANTITY, ANSWER_CODING } =
  Kind;

/** One child element of a type and what to do with it. */
export interface Child {
  readonly kind: number;
  /** The FHIR type (`dateTime`, `Quantity`, `BackboneElement`...), for messages. */
  readonly type: string;
  /** For walked elements: the key of their own map (a type name, or the backbone's path). */
  readonly next: string;
  /** The map of `next`, filled on first use. */
  map: ChildMap | null;
}

/** A type's children by element name. */
export type ChildMap = Map<string, Child>;

const path2Type = r4.path2Type as Record<string, string | { code: string }>;
const elsewhere = r4.pathsDefinedElsewhere as Record<string, string>;
const type2Parent = r4.type2Parent as Record<string, string>;

/** The R4 resource types (every type whose parents lead to `Resource`). */
export const RESOURCE_TYPES: ReadonlySet<string> = (() => {
  const out = new Set<string>(['Resource', 'DomainResource']);
  for (const t of Object.keys(type2Parent)) {
    let p: string | undefined = t;
    for (let depth = 0; p !== undefined && depth < 8; depth++) {
      if (p === 'Resource') {
        out.add(t);
        break;
      }
      p = type2Parent[p];
    }
  }
  out.delete('Resource');
  out.delete('DomainResource');
  return out;
})();

/** Primitive types kept as they are: numbers, booleans, times of day, and `Extension.url`. */
const KEPT_PRIMITIVES = new Set(['boolean', 'integer', 'decimal', 'unsignedInt', 'positiveInt', 'time', 'System.String', 'System.Boolean', 'System.Integer', 'System.Decimal', 'System.Time']);

/**
 * Types removed whole. `string` and `markdown`: free text, unless `PATH_RULES` keeps a
 * code-system term or a unit; `base64Binary`: attachments, photos, signatures; `xhtml`,
 * `Narrative`: the human-readable text; `Annotation`: notes; `HumanName`, `ContactPoint`:
 * names and telecom; `Signature`: who signed, with their signature; `id`, `oid`, `uuid` outside
 * `Resource.id` (element ids, `Meta.versionId`, `valueId`...): labels anyone may write anything
 * in (`ssn-123-45-6789`), which nothing downstream needs.
 */
const DROPPED_TYPES = new Set(['string', 'markdown', 'base64Binary', 'xhtml', 'Narrative', 'Annotation', 'HumanName', 'ContactPoint', 'Signature', 'System.DateTime', 'System.Date', 'id', 'oid', 'uuid']);

/**
 * `uri` and `url` elements kept, by name: those that name a code system, an identifier system,
 * a profile or a definition (`Coding.system`, `Identifier.system`, `Quantity.system`,
 * `Reference.type`, `implicitRules`, `instantiatesUri`, `Questionnaire(Response).item.definition`,
 * a device's UDI issuer). Every other `uri` or `url` may be a person's web page, e-mail
 * (`mailto:`), phone (`tel:`) or a server's address, and is removed; so is a canonical resource's
 * own `url`, which medfit has no use for.
 */
const STRUCTURAL_URIS = new Set(['system', 'type', 'implicitRules', 'instantiatesUri', 'instantiates', 'definitionUri', 'derivedFromUri', 'definition', 'moduleUri', 'protocol', 'eventUri', 'issuer', 'jurisdiction']);

/** Quantity and its specialisations: their `unit` is a unit, not text about a person. */
const QUANTITY_TYPES = ['Quantity', 'Age', 'Count', 'Distance', 'Duration', 'MoneyQuantity', 'SimpleQuantity'];

/** Rules by exact path, which win over the rules by type. */
const PATH_RULES: ReadonlyMap<string, number> = new Map([
  // Code-system terms and units: kept although typed `string` (units are checked by the walker).
  ['Coding.display', KEEP],
  ['Coding.version', KEEP],
  ...QUANTITY_TYPES.map((t) => [`${t}.unit`, KEEP] as const),
  ['SampledData.data', KEEP],
  ['Reference.reference', REFERENCE],
  ['Identifier.value', IDENTIFIER_VALUE],
  // Meta: where the data came from (may name a person's device or a system path); a server's
  // version label (free text); the display of a tag, which is a server's label, not terminology.
  ['Meta.source', DROP],
  ['Meta.versionId', DROP],
  ['Meta.tag', COMPLEX],
  ['Meta.security', COMPLEX],
  // A link to content.
  ['Attachment.url', DROP],
  // A device's network address (an IP address or URL); a location's coordinates.
  ['Device.url', DROP],
  ['Location.position', DROP],
  // Photographs of people.
  ['Patient.photo', DROP],
  ['Practitioner.photo', DROP],
  ['Person.photo', DROP],
  ['RelatedPerson.photo', DROP],
  ['Patient.birthDate', BIRTH_DATE],
  ['Person.birthDate', BIRTH_DATE],
  ['Practitioner.birthDate', BIRTH_DATE],
  ['RelatedPerson.birthDate', BIRTH_DATE],
  // DICOM UIDs name a study, series or image uniquely.
  ['ImagingStudy.series.uid', UID],
  ['ImagingStudy.series.instance.uid', UID],
  // Bundles: links are server queries (they may search by name); entries are references.
  ['Bundle.link', DROP],
  ['Bundle.entry.link', DROP],
  ['Bundle.entry.fullUrl', FULL_URL],
  ['Bundle.entry.request.url', REQUEST_URL],
  ['Bundle.entry.request.ifNoneExist', QUERY],
  ['Bundle.entry.response.location', FULL_URL],
  // An extension's code is kept only for the terminology-bound extensions the walker knows (see
  // fhir.ts `CODED_EXTENSIONS`): elsewhere a `valueCode` is whatever its writer put there.
  ['Extension.valueCode', DROP],
  // Questionnaire answers: free text, dates (a birth date, a date of death), links, attachments
  // and references say too much; codes, numbers, quantities and booleans stay.
  ['QuestionnaireResponse.item.answer.valueDate', DROP],
  ['QuestionnaireResponse.item.answer.valueDateTime', DROP],
  ['QuestionnaireResponse.item.answer.valueTime', DROP],
  ['QuestionnaireResponse.item.answer.valueUri', DROP],
  ['QuestionnaireResponse.item.answer.valueAttachment', DROP],
  ['QuestionnaireResponse.item.answer.valueReference', DROP],
  ['QuestionnaireResponse.item.answer.valueCoding', ANSWER_CODING],
]);

/**
 * Maps derived from another type's by leaving elements out: the codings of `Meta.tag` and
 * `Meta.security` and of an answer, without their `display`.
 */
const DERIVED_MAPS: ReadonlyMap<string, { from: string; without: readonly string[] }> = new Map([
  ['Meta.tag', { from: 'Coding', without: ['display'] }],
  ['Meta.security', { from: 'Coding', without: ['display'] }],
  ['QuestionnaireResponse.item.answer.valueCoding', { from: 'Coding', without: ['display'] }],
]);

let parents: Map<string, Array<[string, string]>> | null = null;

/** Children of every type and path, from the model's flat path → type table (built once). */
function childrenIndex(): Map<string, Array<[string, string]>> {
  if (parents !== null) return parents;
  const idx = new Map<string, Array<[string, string]>>();
  const add = (path: string, type: string) => {
    const dot = path.lastIndexOf('.');
    if (dot < 0) return;
    const parent = path.slice(0, dot);
    let list = idx.get(parent);
    if (list === undefined) idx.set(parent, (list = []));
    list.push([path.slice(dot + 1), type]);
  };
  for (const [path, t] of Object.entries(path2Type)) add(path, typeof t === 'string' ? t : t.code);
  // A backbone defined elsewhere (Questionnaire.item.item is a Questionnaire.item) walks as that one.
  for (const [path, target] of Object.entries(elsewhere)) add(path, `@${target}`);
  parents = idx;
  return idx;
}

function kindOf(path: string, name: string, type: string, isResource: boolean): { kind: number; next: string } {
  const rule = PATH_RULES.get(path);
  if (rule !== undefined) return { kind: rule, next: DERIVED_MAPS.has(path) ? path : type };
  if (type.startsWith('@')) return { kind: COMPLEX, next: type.slice(1) };
  // `Resource.id` becomes a pseudonym; every other `id` (an element's) is a label nothing needs.
  if (name === 'id') return { kind: isResource ? RESOURCE_ID : DROP, next: type };
  if (DROPPED_TYPES.has(type)) return { kind: DROP, next: type };
  if (KEPT_PRIMITIVES.has(type)) return { kind: KEEP, next: type };
  // A value of an open choice (`Extension.value[x]`, `Parameters.parameter.value[x]`,
  // `Task.input.value[x]`...) typed code, uri or canonical is whatever its writer put there.
  const open = name.length === 5 + type.length && name.startsWith('value') && name.charCodeAt(5) === type.toUpperCase().charCodeAt(0) && name.endsWith(type.slice(1));
  switch (type) {
    case 'code':
      // Status-like codes and `Coding.code`, `Quantity.code`, `Attachment.contentType`...: bound
      // to value sets.
      return { kind: open ? DROP : KEEP, next: type };
    case 'canonical':
      // Outside open values, a canonical names a definition (a profile, a questionnaire, a plan).
      return { kind: open ? DROP : KEEP, next: type };
    case 'uri':
    case 'url':
      return { kind: STRUCTURAL_URIS.has(name) && !open ? KEEP : DROP, next: type };
    case 'date':
    case 'dateTime':
      return { kind: DATE, next: type };
    case 'instant':
      return { kind: INSTANT, next: type };
    case 'BackboneElement':
    case 'Element':
      return { kind: COMPLEX, next: path };
    case 'CodeableConcept':
      return { kind: CODEABLE_CONCEPT, next: type };
    case 'Address':
      return { kind: ADDRESS, next: type };
    case 'Age':
      return { kind: AGE, next: type };
    case 'Quantity':
    case 'SimpleQuantity':
    case 'MoneyQuantity':
    case 'Count':
    case 'Distance':
    case 'Duration':
      return { kind: QUANTITY, next: type };
    case 'Extension':
      return { kind: EXTENSION, next: type };
    case 'Resource':
      return { kind: name === 'contained' ? CONTAINED : RESOURCE, next: type };
    default:
      // Another complex data type (Quantity, Period, Reference, Identifier, Meta, Timing...).
      return { kind: /^[A-Z]/.test(type) ? COMPLEX : DROP, next: type };
  }
}

const maps = new Map<string, ChildMap>();

/**
 * The children of a type (`Observation`, `Quantity`) or backbone path (`Observation.component`),
 * compiled on first use; an empty map for a key the model does not know.
 */
export function childMap(key: string): ChildMap {
  let m = maps.get(key);
  if (m !== undefined) return m;
  m = new Map();
  const derived = DERIVED_MAPS.get(key);
  if (derived !== undefined) {
    for (const [name, c] of childMap(derived.from)) if (!derived.without.includes(name)) m.set(name, c);
    maps.set(key, m);
    return m;
  }
  const isResource = RESOURCE_TYPES.has(key);
  for (const [name, type] of childrenIndex().get(key) ?? []) {
    const { kind, next } = kindOf(`${key}.${name}`, name, type, isResource);
    m.set(name, { kind, type: type.startsWith('@') ? 'BackboneElement' : type, next, map: null });
  }
  maps.set(key, m);
  return m;
}

/** The map a walked child uses, resolved once. */
export function mapOf(c: Child): ChildMap {
  return (c.map ??= childMap(c.next));
}
