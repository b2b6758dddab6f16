/** Data-loading hooks: every view loads through `useApi`, which drops stale answers. */
import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import { api, ApiError } from './api';

export interface Loaded<T> {
  data: T | null;
  error: ApiError | null;
  loading: boolean;
  /** Loads again (keeping the current data on screen until the answer arrives). */
  reload: () => void;
}

/**
 * GETs `path` (null: nothing to load) and re-GETs when it changes. A new path clears the old
 * data at once, and an error clears it too, so a failed request never leaves another view's
 * data on screen. `pollMs` re-loads on a timer (lists that update on their own).
 */
export function useApi<T>(path: string | null, pollMs?: number): Loaded<T> {
  const [state, setState] = useState<{ path: string | null; data: T | null; error: ApiError | null; loading: boolean }>({ path, data: null, error: null, loading: path !== null });
  const [tick, setTick] = useState(0);
  const current = useRef(path);
  current.current = path;
  // A different path than the one the state belongs to: show nothing of the old one.
  const view = state.path === path ? state : { path, data: null, error: null, loading: path !== null };

  useEffect(() => {
    if (path === null) return;
    const ctrl = new AbortController();
    setState((s) => (s.path === path ? { ...s, loading: true } : { path, data: null, error: null, loading: true }));
    api<T>(path, { signal: ctrl.signal })
      .then((data) => {
        if (current.current === path) setState({ path, data, error: null, loading: false });
      })
      .catch((err: Error) => {
        if (err.name === 'AbortError') return;
        if (current.current === path) setState({ path, data: null, error: err instanceof ApiError ? err : new ApiError(err.message, 0), loading: false });
      });
    return () => ctrl.abort();
  }, [path, tick]);

  useEffect(() => {
    if (!pollMs || path === null) return;
    const t = setInterval(() => {
      if (document.visibilityState === 'visible') setTick((n) => n + 1);
    }, pollMs);
    return () => clearInterval(t);
  }, [pollMs, path]);

  const reload = useCallback(() => setTick((n) => n + 1), []);
  return { data: view.data, error: view.error, loading: view.loading, reload };
}

/** A message for the page's live region (screen readers hear it; sighted users see it). */
let announcer: ((text: string) => void) | null = null;
export function setAnnouncer(fn: ((text: string) => void) | null): void {
  announcer = fn;
}
export function announce(text: string): void {
  announcer?.(text);
}

/** Sets the document title for the page, "… · medfit". */
export function useTitle(title: string): void {
  useEffect(() => {
    document.title = title ? `${title} · medfit` : 'medfit';
  }, [title]);
}
