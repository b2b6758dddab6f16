/**
 * SQL-on-FHIR v2 ViewDefinitions: compile a view once, run it on each resource, and check the
 * engine against the HL7 conformance suite.
 */
export { compileView, type CompiledView, type ViewColumn, type CompileOptions } from './compile.js';
export { runConformance, type ConformanceResult } from './conformance.js';
export { parseJsonKeepingDecimals } from './json.js';
export { referenceKey, resourceKey } from './functions.js';
