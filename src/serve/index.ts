/**
 * serve: models in ONNX Runtime behind a micro-batcher, and a bounded cache of them. The API and
 * CLI load a version's `model.onnx` with `loadRuntimeModel` (through a `ModelCache`) and call
 * `infer` with features already through the fitted pipeline.
 */
export type { OutputTensor, RuntimeModel, ServedSequence, TensorDatatype, TensorMetadata } from './types.js';
export { loadRuntimeModel, type LoadedModel, type RuntimeOptions, type RuntimeSignature, type RuntimeStats } from './runtime.js';
export { ModelCache, type ModelCacheOptions, type ModelCacheStats } from './cache.js';
export { checkUploadIsolated, UPLOAD_CHECK_LIMITS, type UploadCheckLimits } from './upload-check.js';
export { UPLOAD_SERVING_LIMITS } from './upload-check-protocol.js';
export { StreamWindows, predictStreamEvents, STREAM_MAX_PENDING, STREAM_MAX_STEPS_PER_SAMPLE, STREAM_MAX_WINDOWS_PER_SLICE, STREAM_MAX_VALUES_PER_SLICE, type StreamWindow, type StreamEvent, type StreamLine } from './stream.js';
export type { MqttBridge, MqttBridgeOptions, MqttModel, MqttPrincipal, MqttProblem } from './mqtt.js';

/** The MQTT bridge's module, loaded only by a server that bridges MQTT (MQTT.js is not small). */
export const loadMqttBridge = () => import('./mqtt.js');
