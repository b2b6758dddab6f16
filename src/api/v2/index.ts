/**
 * The Open Inference Protocol (KServe V2) REST surface: `v2Plugin` for Fastify, the `V2Backend`
 * contract it serves from, and the binary tensor data codec (shared with clients and benchmarks).
 */
export { v2Plugin } from './plugin.js';
export type { V2Backend, V2Model, V2PluginOptions, V2ServerMetadata, OutputTensor, TensorMetadata } from './types.js';
export {
  HEADER_LENGTH,
  DATATYPE_SIZE,
  splitBinaryBody,
  joinBinaryBody,
  float32FromBytes,
  float32ToBytes,
  float32Json,
  formatFloat32,
} from './codec.js';
export type { BinaryBody } from './codec.js';
export { parseInferRequest, encodeInferResponse } from './infer.js';
export type { ParsedInferRequest, WantedOutput, EncodedResponse } from './infer.js';
export { createInferFastPath, type InferFastPathOptions } from './fast.js';
export { runInfer, lookupModel, errorResponse, type InferOutcome } from './handlers.js';
