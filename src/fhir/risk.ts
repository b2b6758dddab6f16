/**
 * FHIR out: a model's predictions as R4 `RiskAssessment` resources. Pure functions: the API edge
 * decides statuses and content types (errors: `operationOutcome` in outcome.ts).
 */
import { randomUUID } from 'node:crypto';
import type { Bundle, BundleEntry, CodeableConcept, Coding, Reference, RiskAssessment, RiskAssessmentPrediction } from '@medplum/fhirtypes';
import { Errors } from '../core/index.js';
import { addDuration, isoOfDay, parseDuration, parseIsoDate } from './spec.js';
import type { FeatureSpec } from './types.js';

/** The code system of `RiskAssessment.method` codings: a medfit model, coded `<name>/<version>`. */
export const MEDFIT_MODEL_SYSTEM = 'urn:medfit:model';
/** The code system of `prediction.outcome` codings for a label that has no clinical code (an Observation threshold). */
export const MEDFIT_LABEL_SYSTEM = 'urn:medfit:label';

/** One patient's prediction, as `riskAssessmentBundle` takes it. */
export interface PatientRisk {
  /**
   * The reference to the Patient as the request named it: `Patient/<id>`, or the Bundle entry's
   * `fullUrl` for a Patient without an id.
   */
  subject: string;
  /** The model's class probabilities, keyed by class label (0..1). */
  probabilities: Record<string, number>;
  /** References (`Observation/<id>`, `Condition/<id>`) to the resources whose values went into the features. */
  basis: string[];
}

/** What `riskAssessmentBundle` needs besides the predictions. */
export interface RiskBundleInput {
  model: { name: string; version: number | string };
  /** The classes, in the model's order; a binary model's positive class is the second. */
  classes: string[];
  /** What is predicted (see `outcomeConcept`). */
  outcome: CodeableConcept;
  /** `RiskAssessment.occurrenceDateTime`: when the assessment applies (a FHIR dateTime). */
  occurrence: string;
  /** `prediction.whenPeriod`: the time frame the outcome is predicted for (see `labelWindow`). */
  when?: { start: string; end: string } | undefined;
  patients: PatientRisk[];
  /** Makes ids (tests pass a counter); default random UUIDs. */
  newId?: () => string;
}

/**
 * The predictions as a Bundle of type `collection`, one R4 RiskAssessment per patient.
 *
 * Why `collection` and not `searchset`: a searchset is the answer to a search of resources a
 * server holds (R4 gives it `total`, `self` links and `entry.search`); these RiskAssessments
 * are computed for the request and stored nowhere, so they are "a set of resources collected
 * into a single document", R4's definition of a collection. Each entry's `fullUrl` is the
 * `urn:uuid:` of its resource's id, as R4 asks for resources that have no RESTful location.
 *
 * Each RiskAssessment: `status` final, `subject`, `occurrenceDateTime`, `method` naming the model
 * and version (a coding in `MEDFIT_MODEL_SYSTEM`, text `<name> v<version>`), `basis` (the
 * Observations and Conditions used, when any) and `prediction`: for a binary model one entry, the
 * positive (second) class, else one per class, with `whenPeriod` when the label has a window. `probabilityDecimal` is a percentage (0-100): the
 * R4 definition of `probability[x]` says "Decimal values are expressed as percentages as well
 * (max = 100)", and invariant ras-2 caps it at 100. No `meta.profile`, no narrative (the
 * resource is generated data; a narrative would repeat it as text).
 */
export function riskAssessmentBundle(input: RiskBundleInput): Bundle<RiskAssessment> {
  const newId = input.newId ?? randomUUID;
  const { name, version } = input.model;
  const method: CodeableConcept = {
    coding: [{ system: MEDFIT_MODEL_SYSTEM, code: `${name}/${version}`, display: `${name} v${version}` }],
    text: `${name} v${version}`,
  };
  const shown = input.classes.length === 2 ? [input.classes[1]!] : input.classes;
  const entry: BundleEntry<RiskAssessment>[] = input.patients.map((p) => {
    const id = newId();
    const prediction: RiskAssessmentPrediction[] = shown.map((cls) => ({
      outcome: input.classes.length === 2 ? input.outcome : { ...input.outcome, text: `${input.outcome.text ?? ''}: ${cls}` },
      probabilityDecimal: percent(p.probabilities[cls]),
      ...(input.when ? { whenPeriod: { start: input.when.start, end: input.when.end } } : {}),
    }));
    const resource: RiskAssessment = {
      resourceType: 'RiskAssessment',
      id,
      status: 'final',
      method,
      subject: { reference: p.subject },
      occurrenceDateTime: input.occurrence,
      ...(p.basis.length ? { basis: p.basis.map((reference): Reference => ({ reference })) } : {}),
      prediction,
    };
    return { fullUrl: `urn:uuid:${id}`, resource };
  });
  return { resourceType: 'Bundle', id: newId(), type: 'collection', timestamp: new Date().toISOString(), entry };
}

/** A probability (0..1) as R4's percentage; the model's value kept at full precision. */
function percent(p: number | undefined): number {
  // A model always answers a probability per class; a missing one would be our bug, not the caller's.
  if (p === undefined || !Number.isFinite(p)) throw Errors.internal('a prediction lacks a class probability');
  return Math.min(100, Math.max(0, p * 100));
}

/**
 * What a model trained from a feature spec predicts, as `prediction.outcome`: the label's name as
 * text and, for a Condition label, its first code (the concept; the others the spec lists are its
 * descendants, not translations, so they are not codings of the same concept). A label from an
 * Observation threshold has no clinical code of its own: a coding in `MEDFIT_LABEL_SYSTEM`.
 * Without a label in the spec (a table whose target came from elsewhere): the target column.
 */
export function outcomeConcept(spec: FeatureSpec | undefined, target: string): CodeableConcept {
  const label = spec?.label;
  if (!label) return { text: target };
  if ('condition' in label) {
    const first = label.condition.codes[0];
    const coding = first !== undefined ? codingOf(first) : undefined;
    return { ...(coding ? { coding: [coding] } : {}), text: label.name };
  }
  return { coding: [{ system: MEDFIT_LABEL_SYSTEM, code: label.name }], text: label.name };
}

/**
 * The time frame a spec's label is predicted for: from the index date to the end of the label
 * window (`within` after it), as ISO dates; undefined without a label (or a bad date, which the
 * spec's own checks refuse first).
 */
export function labelWindow(spec: FeatureSpec | undefined, index: string): { start: string; end: string } | undefined {
  const within = spec?.label?.within;
  const day = parseIsoDate(index);
  const dur = within !== undefined ? parseDuration(within) : undefined;
  if (day === undefined || dur === undefined) return undefined;
  return { start: index, end: isoOfDay(addDuration(day, dur, 1)) };
}

/** `system|code` as a Coding (a bare code has no system). */
function codingOf(token: string): Coding | undefined {
  const bar = token.indexOf('|');
  const system = bar >= 0 ? token.slice(0, bar) : '';
  const code = bar >= 0 ? token.slice(bar + 1) : token;
  if (!code) return undefined;
  return system ? { system, code } : { code };
}
