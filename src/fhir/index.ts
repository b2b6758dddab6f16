export type { Resource, ResourceItem, ViewDefinition, ViewSelect, ViewRow, Aggregation, ObservationFeature, ConditionFeature, LabelSpec, FeatureSpec } from './types.js';
