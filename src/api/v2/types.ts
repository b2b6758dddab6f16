/**
 * The contract between the Open Inference Protocol (V2) routes and whatever holds the models.
 * The plugin knows nothing about storage, projects or auth: the lead's auth hook resolves the
 * caller, the `context` option turns the request into an opaque value, and the backend gets that
 * value back on every model lookup.
 */
import type { FastifyRequest } from 'fastify';
import type { OutputTensor, TensorMetadata } from '../../serve/types.js';

export type { OutputTensor, TensorMetadata };

/** Server metadata for `GET /v2` (`$metadata_server_response`). */
export interface V2ServerMetadata {
  name: string;
  version: string;
  /** The plugin adds `binary_tensor_data` when it is missing, since it always speaks it. */
  extensions: string[];
}

/** One model version as the V2 routes see it. */
export interface V2Model {
  name: string;
  /** The version this lookup resolved to; echoed as `model_version` in inference responses. */
  version: string;
  /**
   * Every version that may be requested explicitly (`$metadata_model_response.versions`). A
   * function is called only by the metadata route, so inference never pays for listing them.
   */
  versions: string[] | (() => string[] | Promise<string[]>);
  /** e.g. `onnx_onnxv1`. */
  platform: string;
  /** Exactly one input (the feature tensor, FP32 [-1, nFeatures]); `infer` takes one tensor. */
  inputs: TensorMetadata[];
  outputs: TensorMetadata[];
  ready: boolean;
  /** Runs `rows` row-major rows; resolves with every output of the model. */
  infer(features: Float32Array, rows: number): Promise<OutputTensor[]>;
}

/** What the V2 routes need from the platform. */
export interface V2Backend {
  /** Server metadata for `GET /v2`. */
  server(): V2ServerMetadata;
  /** Whether the server is ready for inference (`GET /v2/health/ready`). */
  ready(): boolean;
  /**
   * The model `name` at `version`, or at the version the platform serves by default when
   * `version` is undefined; undefined when the caller (`ctx`) cannot see such a model (→ 404).
   * Errors thrown here with a 4xx `status`/`statusCode` reach the client as that status.
   */
  model(ctx: unknown, name: string, version?: string): Promise<V2Model | undefined>;
}

/** Options of `v2Plugin`. */
export interface V2PluginOptions {
  backend: V2Backend;
  /** Derives the backend's `ctx` from a request (e.g. the project the auth hook attached). */
  context?: (req: FastifyRequest) => unknown;
  /** Largest inference body in bytes (JSON header plus binary tensors); default 32 MiB. */
  bodyLimit?: number;
  /** Called after every successful inference (metrics, audit), on the routes and the fast path alike. */
  onInfer?: (ctx: unknown, model: V2Model, rows: number) => void;
}
