export { saveArtifact, loadArtifact, nextVersionDir, sha256, FORMAT_VERSION, MANIFEST_FILE, WEIGHTS_FILE, type Artifact, type Manifest } from './artifact.js';
export { predictTable, predictRecords, type Prediction, type PredictionResult } from './predict.js';
