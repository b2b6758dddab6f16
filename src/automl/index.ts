export { trainTable, MLP_MIN_ROWS, type TrainOptions, type TrainResult, type CandidateResult, type MetricSummary, type NestedEstimate } from './train.js';
export { trainSequence, chooseSequenceCandidates, sensorGroups, SENSOR_DROPOUT, AUTO_SEQUENCE, AUTO_NETWORK_VALUES, type SequenceTrainOptions, type SequenceTrainResult, type OutputMetrics } from './sequence.js';
export { LEAK_AUROC, LEAK_R2, ROW_ORDER_FEATURE, ROW_ORDER_TARGET, LIKELY_LEAK_DROP, type LeakageFinding, type LeakageKind, type LeakageReport, type LeakageRescore, type LeakageWarning } from './leakage.js';
