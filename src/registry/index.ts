export {
  saveArtifact,
  loadArtifact,
  loadArtifactOnnx,
  readArtifactDetails,
  nextVersionDir,
  FORMAT_VERSION,
  MANIFEST_FILE,
  WEIGHTS_FILE,
  type Artifact,
  type Manifest,
  type ManifestInput,
  ONNX_FILE,
  EVALUATION_FILE,
} from './artifact.js';
export { sha256, manifestKeyFromEnv, manifestKeyProblem, type IntegrityOptions } from './integrity.js';
export {
  checkDeclaration,
  checkUpload,
  prepareUpload,
  saveUpload,
  loadUpload,
  readUploadInfo,
  discardUpload,
  type UploadDeclaration,
  type UploadInfo,
  type PreparedUpload,
} from './upload.js';
export { predictTable, predictRecords, predictSequence, sequenceDataFor, tablePipeline, sequencePrep, outputNames, formatPredictions, type Prediction, type PredictionResult, type WindowPrediction } from './predict.js';
