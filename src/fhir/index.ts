export type { Resource, ResourceItem, ViewDefinition, ViewSelect, ViewRow, Aggregation, ObservationFeature, ConditionFeature, LabelSpec, FeatureSpec } from './types.js';
export { importFhir, importItems, trainingRoles, type ImportOptions, type ImportResult, type ResourceDeidentifier } from './import.js';
export { operationOutcome, isFhirMediaType, fhirMediaKind, FHIR_MEDIA_TYPES } from './outcome.js';
export { R4_RESOURCE_TYPES, isResourceType, readResources, readResourcesFromStream, MAX_ITEM_BYTES, type FhirInputKind, type ReadResourcesOptions } from './read.js';
export { riskAssessmentBundle, outcomeConcept, labelWindow, MEDFIT_MODEL_SYSTEM, MEDFIT_LABEL_SYSTEM, type PatientRisk, type RiskBundleInput } from './risk.js';
export { parseFeatureSpec, specViews, featureColumns, tableColumns, type SpecViews } from './spec.js';
export { FeatureBuilder, type FeatureTable, type FeatureBuilderOptions } from './features.js';
export { convertUnit, canConvert, unitConverter, ucumProblem, quantityUnit, UCUM_SYSTEM, MOLAR_MASS, type Converter, type ConvertContext } from './ucum.js';
export { compileView, runConformance, parseJsonKeepingDecimals, referenceKey, resourceKey, type CompiledView, type ViewColumn, type CompileOptions, type ConformanceResult } from './view/index.js';
