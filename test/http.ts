/** Small HTTP helpers for the tests (and bench/cluster.ts) that talk to running servers. */

/** A server's answer: status, headers and the body parsed as JSON when it is JSON (else its text). */
export interface Answer {
  status: number;
  headers: Headers;
  json: any;
}

/**
 * `call(base, method, path, body?, type?)` with `Authorization: Bearer <key>`: a body that is a
 * string or Buffer is sent as is (with `type`), anything else as JSON.
 */
export function caller(key: string, timeoutMs = 60_000): (base: string, method: string, path: string, body?: unknown, type?: string) => Promise<Answer> {
  return async (base, method, path, body, type = 'application/json') => {
    const raw = typeof body === 'string' || body instanceof Buffer;
    const res = await fetch(base + path, {
      method,
      headers: { authorization: `Bearer ${key}`, ...(body !== undefined ? { 'content-type': type } : {}) },
      ...(body !== undefined ? { body: raw ? body : JSON.stringify(body) } : {}),
      signal: AbortSignal.timeout(timeoutMs),
    });
    const text = await res.text();
    let json: unknown = text;
    try {
      json = JSON.parse(text);
    } catch {
      /* not JSON */
    }
    return { status: res.status, headers: res.headers, json };
  };
}

/** Polls `what` until it gives a truthy value (errors count as not yet); fails naming `label` after `ms`. */
export async function until<T>(what: () => Promise<T | undefined | false>, ms: number, label: string, everyMs = 50): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await what().catch(() => undefined);
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${label}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
