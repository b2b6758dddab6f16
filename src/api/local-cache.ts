import { readdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';

/** A copy used this recently is never evicted: a request may be reading it right now. */
const IN_USE_MS = 60_000;

/**
 * This process's copies of stored datasets and model directories, held to a size budget
 * (`MEDFIT_CACHE_MB`) when the data directory is only a cache of shared storage: without it, a
 * replica would keep every dataset and model it ever read until its disk filled. The least
 * recently used copies go first; one used within the last minute is kept whatever the budget, and
 * an evicted one is simply fetched again (its SHA-256 checked) the next time it is needed.
 */
export class LocalCache {
  /** Relative path → its size and last use; the Map's order is the order of last use. */
  private readonly entries = new Map<string, { bytes: number; used: number; evict: () => void }>();
  private total = 0;

  constructor(
    private readonly dataDir: string,
    private readonly budgetBytes: number,
    private readonly now: () => number = Date.now,
  ) {}

  /**
   * Notes that the copy at `rel` (a file or directory under the data directory) was just used,
   * then evicts what is beyond the budget. `evict` removes the copy (and its companions); by
   * default the path itself.
   */
  use(rel: string, evict?: () => void): void {
    const known = this.entries.get(rel);
    if (known) {
      this.entries.delete(rel);
      known.used = this.now();
      this.entries.set(rel, known);
    } else {
      const bytes = sizeOf(join(this.dataDir, rel));
      if (bytes === undefined) return;
      this.entries.set(rel, { bytes, used: this.now(), evict: evict ?? (() => rmSync(join(this.dataDir, rel), { recursive: true, force: true })) });
      this.total += bytes;
    }
    this.trim();
  }

  /**
   * Takes in the copies an earlier run of this process left (`datasets/<project>/<file>`, with
   * `evictDataset` removing one and its companions, and `models/<project>/<version>`), as last
   * used when they were last written, and evicts what is beyond the budget.
   */
  adopt(evictDataset: (rel: string) => void): void {
    for (const top of ['datasets', 'models'] as const) {
      for (const project of names(join(this.dataDir, top))) {
        for (const name of names(join(this.dataDir, top, project))) {
          // Hidden names are temporary files; a dataset's profile and lineage go with it.
          if (name.startsWith('.') || (top === 'datasets' && /\.(profile|fhir)\.json$/.test(name))) continue;
          const rel = join(top, project, name);
          const path = join(this.dataDir, rel);
          const bytes = sizeOf(path);
          if (bytes === undefined || this.entries.has(rel)) continue;
          this.entries.set(rel, { bytes, used: mtime(path), evict: top === 'datasets' ? () => evictDataset(rel) : () => rmSync(path, { recursive: true, force: true }) });
          this.total += bytes;
        }
      }
    }
    // Oldest first, as `trim` expects.
    const sorted = [...this.entries].sort((a, b) => a[1].used - b[1].used);
    this.entries.clear();
    for (const [rel, e] of sorted) this.entries.set(rel, e);
    this.trim();
  }

  /** Forgets a copy that was removed by other means (a deleted dataset). */
  forget(rel: string): void {
    const e = this.entries.get(rel);
    if (!e) return;
    this.entries.delete(rel);
    this.total -= e.bytes;
  }

  /** Bytes held by the copies this cache knows. */
  size(): number {
    return this.total;
  }

  private trim(): void {
    const cutoff = this.now() - IN_USE_MS;
    for (const [rel, e] of this.entries) {
      if (this.total <= this.budgetBytes) return;
      // Oldest first: once one is in use, every later one is too.
      if (e.used > cutoff) return;
      this.entries.delete(rel);
      this.total -= e.bytes;
      try {
        e.evict();
      } catch {
        // A copy that cannot be removed now is no longer counted; the disk's own limits stand.
      }
    }
  }
}

function names(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

function mtime(path: string): number {
  try {
    return statSync(path).mtimeMs;
  } catch {
    return 0;
  }
}

/** Bytes of a file, or of every file below a directory; undefined when absent. */
function sizeOf(path: string): number | undefined {
  let st;
  try {
    st = statSync(path);
  } catch {
    return undefined;
  }
  if (!st.isDirectory()) return st.size;
  let bytes = 0;
  for (const name of readdirSync(path)) bytes += sizeOf(join(path, name)) ?? 0;
  return bytes;
}
