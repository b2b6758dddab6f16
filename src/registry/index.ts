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
export { sha256, seal, verifySeal, checkManifestKey, manifestKeyFromEnv, MANIFEST_KEY_MIN_LENGTH, type IntegrityAlgorithm, type IntegrityOptions } from './integrity.js';
export {
  checkDeclaration,
  checkUpload,
  prepareUpload,
  saveUpload,
  loadUpload,
  readUploadInfo,
  discardUpload,
  UPLOAD_FILE,
  UPLOAD_FORMAT_VERSION,
  type UploadDeclaration,
  type UploadInfo,
  type UploadRecord,
  type PreparedUpload,
} from './upload.js';
export { predictTable, predictRecords, formatPredictions, type Prediction, type PredictionResult } from './predict.js';
