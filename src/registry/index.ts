export { saveArtifact, loadArtifact, nextVersionDir, sha256, FORMAT_VERSION, MANIFEST_FILE, WEIGHTS_FILE, type Artifact, type Manifest, type ManifestInput, ONNX_FILE, EVALUATION_FILE } from './artifact.js';
export { predictTable, predictRecords, formatPredictions, type Prediction, type PredictionResult } from './predict.js';
