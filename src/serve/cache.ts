/**
 * A bounded cache of loaded models: ORT sessions hold native memory, so a server keeps at most
 * `max` of them and releases the least recently used. Loads are shared (concurrent `get`s of a key
 * wait on one load) and a failed load is forgotten, so the next `get` tries again.
 */
import { Errors } from '../core/index.js';
import type { RuntimeModel } from './types.js';

/** How the cache is bounded and fills itself. */
export interface ModelCacheOptions<M extends RuntimeModel> {
  /** Most models kept loaded (at least 1). */
  max: number;
  /** Loads the model for `key`, e.g. reads `model.onnx` of a registry version and `loadRuntimeModel`s it. */
  load: (key: string) => Promise<M>;
}

/** Counters of a cache, for metrics and tests. */
export interface ModelCacheStats {
  size: number;
  hits: number;
  misses: number;
  /** Loads that rejected (and were not kept). */
  failedLoads: number;
  evictions: number;
}

/** A model that can release what it holds (a `LoadedModel`); others are just dropped. */
interface Closable {
  close?: () => Promise<void> | void;
}

/**
 * LRU cache of runtime models by key (e.g. `name@version`). Evicted models are closed once their
 * load settles; `close` on a `LoadedModel` lets requests already accepted finish first.
 */
export class ModelCache<M extends RuntimeModel = RuntimeModel> {
  /** Map order is recency order: the first key is the least recently used. */
  private readonly entries = new Map<string, Promise<M>>();
  private readonly max: number;
  private readonly load: (key: string) => Promise<M>;
  private closed = false;
  private readonly counters = { hits: 0, misses: 0, failedLoads: 0, evictions: 0 };

  constructor(options: ModelCacheOptions<M>) {
    if (!Number.isInteger(options.max) || options.max < 1) throw Errors.badParam('max', 'the model cache needs a positive integer size');
    this.max = options.max;
    this.load = options.load;
  }

  /** The model for `key`, loading it if absent (and evicting the least recently used beyond `max`). */
  get(key: string): Promise<M> {
    if (this.closed) return Promise.reject(Errors.internal('the model cache is closed'));
    const hit = this.entries.get(key);
    if (hit) {
      this.counters.hits++;
      this.entries.delete(key);
      this.entries.set(key, hit);
      return hit;
    }
    this.counters.misses++;
    let loading: Promise<M>;
    try {
      loading = this.load(key);
    } catch (e) {
      // A loader that throws synchronously is treated like one that rejects.
      loading = Promise.reject(e);
    }
    const entry = loading.catch((e: unknown) => {
      this.counters.failedLoads++;
      if (this.entries.get(key) === entry) this.entries.delete(key);
      throw e;
    });
    this.entries.set(key, entry);
    while (this.entries.size > this.max) {
      const oldest = this.entries.keys().next().value as string;
      // Not awaited: the caller's model is ready without waiting for another's release; a release
      // that fails leaves nothing for the caller to act on.
      void this.drop(oldest).catch(() => undefined);
      this.counters.evictions++;
    }
    return entry;
  }

  /** Whether `key` is loaded or loading (does not count as a use). */
  has(key: string): boolean {
    return this.entries.has(key);
  }

  /** Keys held, least recently used first. */
  keys(): string[] {
    return [...this.entries.keys()];
  }

  /** Removes `key` and closes its model (e.g. a version was archived); false if it was not held. */
  async evict(key: string): Promise<boolean> {
    if (!this.entries.has(key)) return false;
    await this.drop(key);
    return true;
  }

  /** Closes every model and refuses further `get`s; for a server's shutdown. */
  async close(): Promise<void> {
    this.closed = true;
    await Promise.all([...this.entries.keys()].map((k) => this.drop(k)));
  }

  stats(): ModelCacheStats {
    return { size: this.entries.size, ...this.counters };
  }

  private async drop(key: string): Promise<void> {
    const entry = this.entries.get(key);
    this.entries.delete(key);
    if (!entry) return;
    let model: M;
    try {
      model = await entry;
    } catch {
      return; // a failed load holds nothing to release
    }
    await (model as M & Closable).close?.();
  }
}
