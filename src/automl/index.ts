export { trainTable, MLP_MIN_ROWS, type TrainOptions, type TrainResult, type CandidateResult, type MetricSummary, type NestedEstimate } from './train.js';
