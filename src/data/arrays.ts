/** Typed arrays that grow: the buffers of the scanner, the dictionaries and the columns. */

type Grown = Int8Array | Uint8Array | Int32Array | Float64Array;

/**
 * A new array of the same kind and `length`, holding `a`'s first `min(length, a.length)` elements
 * (the rest zero). Pass a view (`subarray`) to copy only the part in use. Plain typed arrays
 * only: a Buffer's constructor is not one to call.
 */
export function grown<T extends Grown>(a: T, length: number): T {
  const b = new (a.constructor as new (n: number) => T)(length);
  b.set(length < a.length ? a.subarray(0, length) : a);
  return b;
}
