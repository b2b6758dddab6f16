/**
 * Checks an untrusted ONNX model before any ONNX Runtime sees it.
 *
 * ONNX Runtime follows a tensor's `external_data` to a file relative to the model's directory, and
 * a model loaded from bytes has the process's working directory as that: an uploaded model could
 * read the server's database or another project's dataset and return it as its output. So every
 * tensor anywhere in the model (initializers, sparse initializers, node attributes, `Constant`
 * nodes, subgraphs of any depth, model-local functions) must carry its data inline.
 *
 * Operator domains are limited to the ones medfit runs: the default ONNX domain (`''` or
 * `ai.onnx`), `ai.onnx.ml` (scikit-learn and tree exports) and `com.microsoft` (ONNX Runtime's
 * contrib operators, written by its own optimizers and quantizers and by PyTorch and tf2onnx for
 * fused operators); a model-local function's domain is allowed too, because its body is checked
 * here like the main graph. Anything else (`ai.onnx.preview.training`, layout-internal domains,
 * custom-op domains that would need a library the server does not load) is refused by name.
 *
 * The model is checked as decoded by our message definitions (onnx-proto, ONNX 1.10). Fields those
 * definitions do not know (newer ONNX additions such as a function's default attributes) are not
 * seen here, so callers store and serve `encodeOnnxModel` of the checked model, never the bytes
 * they were given: what ONNX Runtime loads is exactly what was checked.
 *
 * Every message names what is wrong and where (graph, node, attribute and tensor names, with any
 * character outside `[A-Za-z0-9_.:-]` replaced), never a tensor's value or an external location.
 */
import onnxProto from 'onnx-proto';
import type { onnx as OnnxTypes } from 'onnx-proto';
import { Errors } from '../../core/index.js';

const { onnx } = onnxProto;

/** A decoded ONNX model. */
export type OnnxModel = OnnxTypes.ModelProto;

/** Operator domains a user's model may use (besides those of its own functions). */
export const ONNX_DOMAINS: readonly string[] = Object.freeze(['', 'ai.onnx', 'ai.onnx.ml', 'com.microsoft']);

/** Bounds on a model's structure, so a hostile file cannot exhaust the stack or the CPU here. */
export interface OnnxLimits {
  /** Most levels of subgraphs (If/Loop/Scan bodies) inside each other, and of functions calling functions. */
  maxDepth: number;
  /** Most nodes in the whole model: every graph, subgraph and function body together. */
  maxNodes: number;
}

/** Defaults: far beyond real models (a transformer has tens of thousands of nodes, a few levels of nesting). */
export const ONNX_LIMITS: Readonly<OnnxLimits> = Object.freeze({ maxDepth: 16, maxNodes: 500_000 });

const EXTERNAL = onnx.TensorProto.DataLocation.EXTERNAL;

/** Bytes per element of a `raw_data` payload, by TensorProto.DataType; 0.5 for the 4-bit types. */
const ELEMENT_BYTES: Readonly<Record<number, number>> = {
  1: 4, 2: 1, 3: 1, 4: 2, 5: 2, 6: 4, 7: 8, 9: 1, 10: 2, 11: 8, 12: 4, 13: 8, 14: 8, 15: 16, 16: 2,
  17: 1, 18: 1, 19: 1, 20: 1, 21: 0.5, 22: 0.5, 23: 0.5,
};

/**
 * Operators whose trip count or output size comes from an input's VALUES: the server runs an
 * uploaded model in its own process, and one request could make such a model loop for days or
 * allocate terabytes. Loop and Scan are refused outright; the others (by which inputs size their
 * output) only when that input is computed from anything but constants and the shapes of tensors
 * (`ConstantOfShape(Shape(x))` is fine: bounded by x, which the request bounds).
 */
const SIZED_BY_VALUES: Readonly<Record<string, readonly number[]>> = {
  ConstantOfShape: [0],
  Expand: [1],
  Tile: [1],
  Range: [0, 1, 2],
  OneHot: [1],
  Resize: [1, 2, 3],
  Upsample: [1],
  Pad: [1],
};
const UNBOUNDED_LOOPS = new Set(['Loop', 'Scan']);
/** Operators that carry shapes (and constants) along without computing new sizes from them. */
const SHAPE_PLUMBING = new Set(['Shape', 'Size', 'Cast', 'Concat', 'Gather', 'Slice', 'Squeeze', 'Unsqueeze', 'Identity', 'Reshape']);

/** A name from the model, safe to put in a message: no path separators, no control characters, bounded. */
export function onnxName(s: string | null | undefined): string {
  const t = String(s ?? '').slice(0, 65).replace(/[^A-Za-z0-9_.:-]/g, '_');
  return `"${t.length > 64 ? `${t.slice(0, 64)}…` : t}"`;
}

/** A location in the model for a message; deep ones keep their start and end. */
function where(trail: string[]): string {
  return (trail.length > 8 ? [...trail.slice(0, 2), '…', ...trail.slice(-5)] : trail).join(' › ');
}


/** int64 fields arrive as numbers or Long objects (protobufjs with the `long` package). */
function toNumber(v: number | { toNumber(): number } | null | undefined): number {
  if (v === null || v === undefined) return 0;
  return typeof v === 'number' ? v : v.toNumber();
}

/**
 * Decodes and checks untrusted model bytes; returns the checked model with `training_info`
 * removed (training graphs play no part in inference, so nothing in them needs to reach ONNX
 * Runtime). Throws MEDFIT_ERR_BAD_DATA at `pointer` saying what is wrong and where.
 */
export function parseUntrustedOnnx(bytes: Uint8Array, opts: { limits?: OnnxLimits; pointer?: string } = {}): OnnxModel {
  const pointer = opts.pointer ?? '/onnx';
  let model: OnnxModel;
  try {
    model = onnx.ModelProto.decode(bytes);
  } catch {
    // protobufjs's message (offsets, wire types) means nothing to a user, and a hostile file
    // nested deeper than the stack ends here too, as a RangeError.
    throw Errors.badAt(pointer, 'not an ONNX model (the bytes are not a valid ONNX protobuf)');
  }
  validateOnnxModel(model, opts);
  model.trainingInfo = [];
  // ONNX Runtime applies session options found under this key when the server runs with
  // ORT_LOAD_CONFIG_FROM_MODEL=1: a user's model never configures our sessions.
  model.metadataProps = (model.metadataProps ?? []).filter((p) => p.key !== 'ort_config');
  return model;
}

/** Serializes a (checked) model: only fields our definitions know are written. */
export function encodeOnnxModel(model: OnnxModel): Uint8Array {
  return onnx.ModelProto.encode(model).finish();
}

/**
 * Checks a decoded model: no external data anywhere, operator domains and opset imports within
 * `ONNX_DOMAINS` or the model's own functions, functions that do not call themselves, structure
 * within `limits`, tensors whose data fits their dims, and node inputs that something produces.
 */
export function validateOnnxModel(model: OnnxModel, opts: { limits?: OnnxLimits; pointer?: string } = {}): void {
  new Checker(opts.limits ?? ONNX_LIMITS, opts.pointer ?? '/onnx').model(model);
}

class Checker {
  private nodes = 0;
  /** Local functions by `domain \0 name`. */
  private readonly functions = new Map<string, OnnxTypes.IFunctionProto>();
  private readonly functionDomains = new Set<string>();
  /** Local functions each local function's body calls (subgraphs included). */
  private readonly calls = new Map<string, Set<string>>();
  /** The function whose body is being checked, if any. */
  private current: string | undefined;

  constructor(
    private readonly limits: OnnxLimits,
    private readonly pointer: string,
  ) {}

  private fail(message: string): never {
    throw Errors.badAt(this.pointer, message);
  }

  model(m: OnnxModel): void {
    if (!m.graph) this.fail('not an ONNX model (it has no graph)');
    for (const f of m.functions ?? []) {
      const key = `${f.domain ?? ''}\u0000${f.name ?? ''}`;
      if (this.functions.has(key)) this.fail(`function ${onnxName(f.name)} of domain ${onnxName(f.domain)} is defined twice`);
      this.functions.set(key, f);
      this.functionDomains.add(f.domain ?? '');
    }
    this.opsets(m.opsetImport ?? [], 'the model');
    for (const [key, f] of this.functions) {
      const trail = [`function ${onnxName(f.name)}`];
      this.opsets(f.opsetImport ?? [], trail[0]!);
      this.current = key;
      this.calls.set(key, new Set());
      const scope = new Set<string>(f.input ?? []);
      for (const n of f.node ?? []) for (const o of n.output ?? []) scope.add(o);
      const values = new Sizes(f.node ?? [], new Set());
      (f.node ?? []).forEach((n, i) => this.node(n, i, trail, 1, [scope], values));
    }
    this.current = undefined;
    this.callChains();
    this.graph(m.graph, ['graph'], 0, []);
  }

  private opsets(imports: OnnxTypes.IOperatorSetIdProto[], where: string): void {
    for (const o of imports) {
      const d = o.domain ?? '';
      if (!ONNX_DOMAINS.includes(d) && !this.functionDomains.has(d)) this.fail(`${where} imports operator domain ${onnxName(d)}, which medfit does not run (allowed: ai.onnx, ai.onnx.ml, com.microsoft and the model's own functions)`);
    }
  }

  private graph(g: OnnxTypes.IGraphProto, trail: string[], depth: number, outer: Set<string>[]): void {
    if (depth > this.limits.maxDepth) this.fail(`subgraphs are nested more than ${this.limits.maxDepth} levels deep (at ${where(trail)})`);
    const here = [...trail.slice(0, -1), `${trail[trail.length - 1]} ${onnxName(g.name)}`];
    const scope = new Set<string>();
    for (const v of g.input ?? []) scope.add(v.name ?? '');
    for (const t of g.initializer ?? []) {
      this.tensor(t, [...here, `initializer ${onnxName(t.name)}`]);
      scope.add(t.name ?? '');
    }
    for (const s of g.sparseInitializer ?? []) {
      this.sparse(s, [...here, `sparse initializer ${onnxName(s.values?.name)}`]);
      scope.add(s.values?.name ?? '');
    }
    for (const n of g.node ?? []) for (const o of n.output ?? []) scope.add(o);
    const scopes = [...outer, scope];
    const values = new Sizes(g.node ?? [], new Set([...(g.initializer ?? []).map((t) => t.name ?? ''), ...(g.sparseInitializer ?? []).map((t) => t.values?.name ?? '')]));
    (g.node ?? []).forEach((n, i) => this.node(n, i, here, depth, scopes, values));
    for (const o of g.output ?? []) {
      if (!scopes.some((s) => s.has(o.name ?? ''))) this.fail(`${where(here)}: output ${onnxName(o.name)} is produced by nothing in the graph`);
    }
  }

  private node(n: OnnxTypes.INodeProto, index: number, trail: string[], depth: number, scopes: Set<string>[], values: Sizes): void {
    if (++this.nodes > this.limits.maxNodes) this.fail(`the model has more than ${this.limits.maxNodes} nodes`);
    const label = n.name ? `node ${onnxName(n.name)}` : `node #${index} (${onnxName(n.opType)})`;
    const here = [...trail, label];
    const domain = n.domain ?? '';
    const fn = `${domain}\u0000${n.opType ?? ''}`;
    if (this.functions.has(fn)) {
      if (this.current !== undefined) this.calls.get(this.current)!.add(fn);
    } else if (!ONNX_DOMAINS.includes(domain)) {
      this.fail(`${where(here)} uses operator domain ${onnxName(domain)}, which medfit does not run (allowed: ai.onnx, ai.onnx.ml, com.microsoft and the model's own functions)`);
    }
    for (const input of n.input ?? []) {
      // An empty name is an omitted optional input.
      if (input !== '' && !scopes.some((s) => s.has(input))) this.fail(`${where(here)} reads ${onnxName(input)}, which nothing in the model produces`);
    }
    for (const a of n.attribute ?? []) {
      const at = [...here, `attribute ${onnxName(a.name)}`];
      if (a.t) this.tensor(a.t, at);
      for (const t of a.tensors ?? []) this.tensor(t, at);
      if (a.sparseTensor) this.sparse(a.sparseTensor, at);
      for (const s of a.sparseTensors ?? []) this.sparse(s, at);
      if (a.g) this.graph(a.g, [...at, 'graph'], depth + 1, scopes);
      for (const g of a.graphs ?? []) this.graph(g, [...at, 'graph'], depth + 1, scopes);
    }
    // After the attributes: external data anywhere, even in a loop's body, is named as such.
    const op = n.opType ?? '';
    if (domain === '' || domain === 'ai.onnx') {
      if (UNBOUNDED_LOOPS.has(op)) {
        this.fail(`${where(here)} is a ${op}, whose iterations can come from the input's values; uploaded models may not loop (the server runs them in its own process)`);
      }
      const sized = Object.hasOwn(SIZED_BY_VALUES, op) ? SIZED_BY_VALUES[op]! : [];
      for (const k of sized) {
        const input = n.input?.[k];
        if (input && !values.bounded(input)) {
          this.fail(`${where(here)} (${onnxName(op)}) sizes its output by computed values; an uploaded model may size tensors only by constants and the shapes of its tensors`);
        }
      }
    }
  }

  private tensor(t: OnnxTypes.ITensorProto, trail: string[]): void {
    if (t.dataLocation === EXTERNAL || (t.externalData?.length ?? 0) > 0) {
      this.fail(`external data in ${where(trail)}: an uploaded model must carry its weights inside the file (save it without external data)`);
    }
    let elements = 1;
    for (const d of t.dims ?? []) {
      const n = toNumber(d);
      if (!Number.isSafeInteger(n) || n < 0) this.fail(`${where(trail)} has an invalid dimension`);
      elements *= n;
    }
    if (!Number.isSafeInteger(elements)) this.fail(`${where(trail)} declares more elements than any model can hold`);
    const type = t.dataType ?? 0;
    const size = ELEMENT_BYTES[type];
    const raw = t.rawData?.length ?? 0;
    if (raw > 0 && size !== undefined) {
      const want = Math.ceil(elements * size);
      if (raw !== want) this.fail(`${where(trail)} has ${raw} bytes of data for its dims, which need ${want}`);
      return;
    }
    if (raw > 0) return;
    const counts = [t.floatData, t.int32Data, t.stringData, t.int64Data, t.doubleData, t.uint64Data].map((a) => a?.length ?? 0);
    const values = counts.reduce((a, b) => a + b, 0);
    // Complex numbers take two values each; 4-bit types pack two values into one int32 entry.
    const want = type === 14 || type === 15 ? 2 * elements : type === 21 || type === 22 || type === 23 ? Math.ceil(elements / 2) : elements;
    if (size !== undefined || type === 8) {
      if (values !== want) this.fail(`${where(trail)} has ${values} values for dims that need ${want}`);
    }
  }

  private sparse(s: OnnxTypes.ISparseTensorProto, trail: string[]): void {
    for (const d of s.dims ?? []) {
      const n = toNumber(d);
      if (!Number.isSafeInteger(n) || n < 0) this.fail(`${where(trail)} has an invalid dimension`);
    }
    if (s.values) this.tensor(s.values, [...trail, 'values']);
    if (s.indices) this.tensor(s.indices, [...trail, 'indices']);
  }

  /**
   * Functions may call functions, but not themselves (directly or through others), and not in
   * chains longer than `maxDepth`: ONNX Runtime inlines them recursively.
   */
  private callChains(): void {
    const state = new Map<string, 'open' | 'done'>();
    const length = new Map<string, number>();
    const name = (key: string) => onnxName(key.split('\u0000')[1]);
    for (const start of this.calls.keys()) {
      if (state.has(start)) continue;
      state.set(start, 'open');
      const stack: Array<{ key: string; next: Iterator<string> }> = [{ key: start, next: this.calls.get(start)!.values() }];
      while (stack.length > 0) {
        const top = stack[stack.length - 1]!;
        const step = top.next.next();
        if (step.done) {
          let longest = 0;
          for (const c of this.calls.get(top.key)!) longest = Math.max(longest, length.get(c) ?? 0);
          length.set(top.key, longest + 1);
          if (longest + 1 > this.limits.maxDepth) this.fail(`functions call each other more than ${this.limits.maxDepth} levels deep (from function ${name(top.key)})`);
          state.set(top.key, 'done');
          stack.pop();
          continue;
        }
        const callee = step.value;
        const s = state.get(callee);
        if (s === 'open') this.fail(`function ${name(callee)} calls itself (directly or through other functions)`);
        if (s === undefined) {
          state.set(callee, 'open');
          stack.push({ key: callee, next: this.calls.get(callee)!.values() });
        }
      }
    }
  }
}

/**
 * Which values of one graph are bounded sizes: constants (initializers, `Constant` nodes) and
 * shapes of tensors (`Shape`, `Size`), carried through shape plumbing (Cast, Concat, Gather...)
 * whose every input is bounded too. Anything computed otherwise, or coming from outside the graph
 * (its inputs, an outer scope, a function's parameters), is not.
 */
class Sizes {
  private readonly producer = new Map<string, OnnxTypes.INodeProto>();
  private readonly memo = new Map<string, boolean>();

  constructor(
    nodes: OnnxTypes.INodeProto[],
    private readonly constants: Set<string>,
  ) {
    for (const n of nodes) for (const o of n.output ?? []) this.producer.set(o, n);
  }

  bounded(name: string, depth = 0): boolean {
    const known = this.memo.get(name);
    if (known !== undefined) return known;
    let ok = false;
    if (this.constants.has(name)) ok = true;
    else {
      const n = this.producer.get(name);
      const op = n?.opType ?? '';
      const plain = n !== undefined && (n.domain ?? '') === '';
      if (plain && (op === 'Constant' || op === 'Shape' || op === 'Size')) ok = true;
      else if (plain && SHAPE_PLUMBING.has(op) && depth < 64) ok = (n!.input ?? []).every((i) => i === '' || this.bounded(i, depth + 1));
    }
    this.memo.set(name, ok);
    return ok;
  }
}
