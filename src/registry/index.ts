export {
  saveArtifact,
  loadArtifact,
  loadArtifactOnnx,
  readArtifactDetails,
  readVerifiedFile,
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
export { sha256, seal, verifySeal, checkManifestKey, MANIFEST_KEY_MIN_LENGTH, type IntegrityAlgorithm, type IntegrityOptions } from './integrity.js';
export { predictTable, predictRecords, formatPredictions, type Prediction, type PredictionResult } from './predict.js';
