// The sensor-stream room: long-format and FIT readers, resampling, filtering, windows and window
// features. Below `models` (window features are shared by training and serving), above `data`.
export {};
export { readSessions, readSessionsFor, detectTimeUnit, detectRate, type SequenceColumns, type SequenceData, type Session, type TargetInfo, type TimeUnit, type ReadSessionsOptions } from './sessions.js';
export {
  SEQUENCE_PREP_VERSION,

  resampleSession,
  filterSegment,
  fitNormaliser,
  windowize,
  windowCount,
  segmentsOf,
  resampledValues,
  windowWarnings,
  validateSequencePrep,
  type ChannelFilter,
  type WindowLabel,
  type WindowOptions,
  type SequencePrep,
  type Segment,
  type WindowInfo,
  type Windows,
} from './prepare.js';
export { profileSequence, sessionSeries, type SequenceProfile, type SessionProfile, type ChannelProfile, type LabelProfile, type SessionSeries } from './profile.js';
export { windowFeatures, windowFeatureNames, WINDOW_FEATURES_VERSION, SERIES_FEATURES, type WindowShape } from './features.js';
export { fitSessionRows, fitToTable, readFitPaths, FIT_MAX_FILE_BYTES, FIT_MAX_SAMPLES, FIT_MAX_DEVELOPER_FIELDS, FIT_MAX_CHANNELS, FIT_MAX_CELLS, type FitSession, type FitFile } from './fit.js';
export { FITNESS_ACTIVITIES, FITNESS_COLUMNS, FITNESS_DEFAULTS, FITNESS_LIMITS, FITNESS_SESSIONS, fitnessRowCount, fitnessSubjects, resolveFitnessOptions, synthFitnessCsv, synthFitnessStream, writeSynthFitness, type FitnessActivity, type FitnessSubject, type FitnessSynthOptions } from './synth.js';
export { SEQUENCE_LIMITS, sequenceLimitProblem, SEQUENCE_COLUMN_DEFAULTS, defaultColumn, noDefaultColumn, readLength, lengthSteps, readFilter, type Length } from './options.js';
