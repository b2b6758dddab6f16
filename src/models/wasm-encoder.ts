/**
 * The few pieces of WebAssembly's binary format that medfit's hand-written kernels share
 * (`seqnet/gemm.ts`, used by the sequence networks and the MLP, and `gbdt/kernel.ts`): LEB128
 * numbers, vectors, sections, locals, constants and the structured loops. Each kernel keeps its
 * own opcodes; nothing here depends on a toolchain.
 */

/** Instruction bytes. */
export type Code = number[];

/** Value types. */
export const I32 = 0x7f;
export const F32 = 0x7d;
export const F64 = 0x7c;
export const V128 = 0x7b;

/** Unsigned LEB128. */
export function uleb(v: number): number[] {
  const out: number[] = [];
  do {
    let b = v & 0x7f;
    v >>>= 7;
    if (v !== 0) b |= 0x80;
    out.push(b);
  } while (v !== 0);
  return out;
}

/** Signed LEB128. */
export function sleb(v: number): number[] {
  const out: number[] = [];
  for (;;) {
    const b = v & 0x7f;
    v >>= 7;
    if ((v === 0 && (b & 0x40) === 0) || (v === -1 && (b & 0x40) !== 0)) {
      out.push(b);
      return out;
    }
    out.push(b | 0x80);
  }
}

/** A name: its length, then its (ASCII) bytes. */
export const str = (s: string): Code => [...uleb(s.length), ...Array.from(s, (c) => c.charCodeAt(0))];
/** A vector: its length, then its items. */
export const vec = (items: Code[]): Code => [...uleb(items.length), ...items.flat()];
/** A module section: its id, its size, its body. */
export const section = (id: number, body: Code): Code => [id, ...uleb(body.length), ...body];
/** `local.get` / `local.set` / `i32.const`. */
export const get = (l: number): Code => [0x20, ...uleb(l)];
export const set = (l: number): Code => [0x21, ...uleb(l)];
export const i32 = (v: number): Code => [0x41, ...sleb(v)];
/** `block { loop { br_if 1 (exit); body; br 0 } }`: runs `body` until `exit` is true. */
export const whileNot = (exit: Code, body: Code): Code => [0x02, 0x40, 0x03, 0x40, ...exit, 0x0d, 1, ...body, 0x0c, 0, 0x0b, 0x0b];
/** `cond; if { a } else { b }`. */
export const ifElse = (cond: Code, a: Code, b: Code): Code => [...cond, 0x04, 0x40, ...a, 0x05, ...b, 0x0b];
