/**
 * The one way the web app talks to medfit: `/v1` with the tab's API key, answers parsed as JSON,
 * failures turned into an `ApiError` whose message a person can read (RFC 9457 problems are
 * medfit's error format; their `detail` and field errors are shown, never the raw JSON).
 *
 * The key lives in sessionStorage: it is gone when the tab closes, and nothing else the app
 * handles (records, predictions, datasets) is ever written to the browser's storage.
 */

const KEY_STORAGE = 'medfit.key';

/** A failed request, with a message fit for the screen. */
export class ApiError extends Error {
  constructor(
    message: string,
    readonly status: number,
    /** Field-level problems (`errors[]` of a problem document), pointer → message. */
    readonly fields: { pointer: string; message: string }[] = [],
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

export function storedKey(): string | null {
  try {
    return sessionStorage.getItem(KEY_STORAGE);
  } catch {
    return null;
  }
}

export function storeKey(key: string | null): void {
  try {
    if (key === null) sessionStorage.removeItem(KEY_STORAGE);
    else sessionStorage.setItem(KEY_STORAGE, key);
  } catch {
    // Storage disabled (private mode): the key then lasts for this page only.
  }
  currentKey = key;
}

let currentKey: string | null = storedKey();
/** Called when the server says the key is no longer valid (401), so the app can sign out. */
let onUnauthorized: (() => void) | null = null;

export function setUnauthorizedHandler(fn: (() => void) | null): void {
  onUnauthorized = fn;
}

/** The message of a failed response: the problem's detail (or title) and its field errors. */
export async function errorOf(res: Response): Promise<ApiError> {
  let message = `${res.status} ${res.statusText || 'request failed'}`;
  let fields: { pointer: string; message: string }[] = [];
  try {
    const body = (await res.json()) as { title?: string; detail?: string; error?: string; errors?: { pointer?: string; message?: string }[] };
    const text = body.detail ?? body.error ?? body.title;
    if (typeof text === 'string' && text) message = text;
    if (Array.isArray(body.errors)) fields = body.errors.map((e) => ({ pointer: String(e.pointer ?? ''), message: String(e.message ?? '') }));
  } catch {
    // Not JSON (a proxy's page, say): keep the status line.
  }
  if (res.status === 401) message = 'The API key was refused (unknown or revoked). Sign in again.';
  return new ApiError(message, res.status, fields);
}

function headers(extra: Record<string, string> = {}): Record<string, string> {
  return { ...(currentKey ? { authorization: `Bearer ${currentKey}` } : {}), ...extra };
}

/** A JSON request to the API. `body` is sent as JSON when given. */
export async function api<T>(path: string, init: { method?: string; body?: unknown; signal?: AbortSignal; key?: string } = {}): Promise<T> {
  let res: Response;
  try {
    res = await fetch(path, {
      method: init.method ?? (init.body === undefined ? 'GET' : 'POST'),
      headers: { ...headers(init.body === undefined ? {} : { 'content-type': 'application/json' }), ...(init.key ? { authorization: `Bearer ${init.key}` } : {}) },
      ...(init.body === undefined ? {} : { body: JSON.stringify(init.body) }),
      ...(init.signal ? { signal: init.signal } : {}),
    });
  } catch (err) {
    if ((err as Error).name === 'AbortError') throw err;
    throw new ApiError('The server could not be reached. Check that medfit is running and try again.', 0);
  }
  if (!res.ok) {
    const e = await errorOf(res);
    if (res.status === 401 && !init.key) onUnauthorized?.();
    throw e;
  }
  if (res.status === 204) return undefined as T;
  return (await res.json()) as T;
}

/**
 * Uploads a file with progress (fetch cannot report upload progress; XMLHttpRequest can).
 * Resolves with the parsed JSON answer.
 */
export function upload<T>(path: string, file: Blob, contentType: string, onProgress: (fraction: number) => void, signal?: AbortSignal): Promise<T> {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open('POST', path);
    for (const [k, v] of Object.entries(headers({ 'content-type': contentType }))) xhr.setRequestHeader(k, v);
    xhr.upload.onprogress = (e) => {
      if (e.lengthComputable) onProgress(e.loaded / e.total);
    };
    xhr.onload = () => {
      const res = new Response(xhr.responseText, { status: xhr.status, statusText: xhr.statusText, headers: { 'content-type': xhr.getResponseHeader('content-type') ?? '' } });
      if (xhr.status >= 200 && xhr.status < 300) {
        onProgress(1);
        res.json().then((v) => resolve(v as T), () => reject(new ApiError('The server sent an answer that is not JSON.', xhr.status)));
      } else {
        if (xhr.status === 401) onUnauthorized?.();
        errorOf(res).then(reject, reject);
      }
    };
    xhr.onerror = () => reject(new ApiError('The upload failed: the server could not be reached.', 0));
    xhr.onabort = () => reject(new DOMException('aborted', 'AbortError'));
    signal?.addEventListener('abort', () => xhr.abort(), { once: true });
    xhr.send(file);
  });
}

/**
 * Follows a job's Server-Sent Events. EventSource cannot send an Authorization header, so the
 * stream is read with fetch. Returns a function that stops following.
 */
export function followEvents(path: string, onEvent: (event: string, data: unknown) => void, onEnd: (error?: ApiError) => void): () => void {
  const ctrl = new AbortController();
  (async () => {
    const res = await fetch(path, { headers: headers({ accept: 'text/event-stream' }), signal: ctrl.signal });
    if (!res.ok || !res.body) return onEnd(await errorOf(res));
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    let buf = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += value;
      let cut: number;
      while ((cut = buf.indexOf('\n\n')) >= 0) {
        const block = buf.slice(0, cut);
        buf = buf.slice(cut + 2);
        let event = 'message';
        const data: string[] = [];
        for (const line of block.split('\n')) {
          if (line.startsWith('event:')) event = line.slice(6).trim();
          else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''));
        }
        if (!data.length) continue;
        let parsed: unknown = data.join('\n');
        try {
          parsed = JSON.parse(parsed as string);
        } catch {
          // Keep the text.
        }
        onEvent(event, parsed);
      }
    }
    onEnd();
  })().catch((err: Error) => {
    if (err.name !== 'AbortError') onEnd(err instanceof ApiError ? err : new ApiError('Lost the connection to the server while following the job.', 0));
  });
  return () => ctrl.abort();
}

/** The path of a URL with its parts encoded: `path('/v1/models', name, 'versions', v)`. */
export function path(...parts: (string | number)[]): string {
  return parts.map((p, i) => (i === 0 ? String(p) : encodeURIComponent(String(p)))).join('/');
}
