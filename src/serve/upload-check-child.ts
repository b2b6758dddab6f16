/**
 * Entry of the child process that proves an uploaded model (started by `checkUploadIsolated` in
 * upload-check.ts, which also enforces the time and memory limits): checks and re-encodes the
 * bytes, sends the result, loads it in ONNX Runtime with the declared signature (within a load
 * time), runs one row of zeros and then `UPLOAD_SERVING_LIMITS.runRows` rows (within a run time)
 * and checks the output width. Every refusal is sent in our words; ONNX Runtime's own
 * message goes separately, for the server log. The process then waits to be killed.
 */
import { Errors, errorChain, isMedfitError, serializeError } from '../core/index.js';
import { prepareUpload, type PreparedUpload } from '../registry/index.js';
import { loadRuntimeModel, type LoadedModel } from './runtime.js';
import { UPLOAD_SERVING_LIMITS, type CheckReply, type CheckRequest } from './upload-check-protocol.js';

if (!process.send) throw new Error('serve/upload-check-child must be started by checkUploadIsolated');
const send = (m: CheckReply) => new Promise<void>((resolve) => process.send!(m, undefined, {}, () => resolve()));

// The parent gone (crashed, or done with this check): nothing left to do.
process.on('disconnect', () => process.exit(0));
process.once('message', (m: CheckRequest) => void check(m));

/** Sends a refusal: a MedfitError of ours as it is, anything else as a plain message; `cause` to the log. */
async function fail(e: unknown, cause?: unknown): Promise<void> {
  const err = isMedfitError(e) ? e : Errors.badAt('/onnx', 'the model could not be checked (the server log has the details)');
  const log = cause !== undefined ? errorChain(cause) : isMedfitError(e) ? undefined : errorChain(e);
  await send({ type: 'error', error: serializeError(err), ...(log ? { log } : {}) });
}

async function check({ bytes, declaration }: CheckRequest): Promise<void> {
  let prepared: PreparedUpload;
  try {
    prepared = prepareUpload(bytes, declaration);
  } catch (e) {
    return fail(e);
  }
  // Sent before ONNX Runtime runs here, so nothing it could do changes what gets stored.
  await send({ type: 'prepared', prepared });
  let runtime: LoadedModel;
  const t0 = performance.now();
  try {
    runtime = await loadRuntimeModel(prepared.onnx, prepared.info);
  } catch (e) {
    // A signature mismatch found by loadRuntimeModel is in our words; ONNX Runtime's own are not.
    if (isMedfitError(e) && e.cause === undefined) return fail(Errors.badAt('/onnx', e.message.replace(/^model\.onnx: /, '')));
    return fail(Errors.badAt('/onnx', 'ONNX Runtime cannot load the model; check that it loads in ONNX Runtime 1.30 (its message is in the server log)'), e);
  }
  // The server loads (and runs) accepted models in its own process, on its event loop: what is
  // slow here would hold every other request there.
  const loadSeconds = (performance.now() - t0) / 1000;
  if (loadSeconds > UPLOAD_SERVING_LIMITS.loadSeconds) {
    await runtime.close();
    return fail(Errors.badAt('/onnx', `the model takes ${loadSeconds.toFixed(1)} s to load; at most ${UPLOAD_SERVING_LIMITS.loadSeconds} s is accepted, since the server loads models on the thread that answers requests`));
  }
  const n = prepared.info.inputs[0]!.shape[1]!;
  const w = prepared.info.outputs[0]!.shape[1]!;
  try {
    // One row, then as many rows as the server ever runs at once for an uploaded model.
    for (const rows of [1, UPLOAD_SERVING_LIMITS.runRows]) {
      let got: number;
      const t1 = performance.now();
      try {
        const [out] = await runtime.infer(new Float32Array(n * rows), rows);
        got = out?.data.length ?? 0;
      } catch (e) {
        return fail(Errors.badAt('/onnx', `the model fails on ${rows === 1 ? 'one row' : `${rows} rows`} of ${n} zeros (ONNX Runtime's message is in the server log)`), e);
      }
      if (got !== w * rows) return fail(Errors.badAt('/onnx', `the model returns ${got / rows} value(s) per row, the declaration implies ${w}`));
      const seconds = (performance.now() - t1) / 1000;
      if (seconds > UPLOAD_SERVING_LIMITS.runSeconds) {
        return fail(Errors.badAt('/onnx', `the model takes ${seconds.toFixed(1)} s for ${rows} row(s); at most ${UPLOAD_SERVING_LIMITS.runSeconds} s is accepted`));
      }
    }
  } finally {
    await runtime.close();
  }
  await send({ type: 'ok' });
}
