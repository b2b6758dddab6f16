/**
 * Entry of a profiling worker thread: profiles the file in `workerData` and posts the profile
 * back, or the error (serialized: a MedfitError keeps its code and message; anything else becomes
 * a plain internal error, its detail never leaving the thread).
 */
import { parentPort, workerData } from 'node:worker_threads';
import { Errors, isMedfitError, serializeError } from '../core/index.js';
import { profileFile, type ProfileFileOptions } from './profile.js';

const { path, opts } = workerData as { path: string; opts: ProfileFileOptions };
profileFile(path, opts).then(
  (profile) => parentPort!.postMessage({ profile }),
  (e: unknown) => parentPort!.postMessage({ error: serializeError(isMedfitError(e) ? e : Errors.internal('profiling failed unexpectedly')) }),
);
