/**
 * The sequence networks' inference path in plain TypeScript (Float64 math): what `predict` runs on
 * the calling thread, and what the ONNX export mirrors. Layer semantics are Keras's, as described
 * in `weights.ts`; `seqnet.test.ts` checks them against TensorFlow.js layers.
 */
import { Errors } from '../../core/index.js';
import type { Matrix } from '../../core/index.js';
import type { SeqLayer, SeqNetWeights } from './weights.js';

/** Layers per network accepted by `validateSeqNetWeights` (medfit builds at most 6). */
export const MAX_SEQ_LAYERS = 32;

/** What flows between layers: a sequence of `steps × width` values, or one vector of `width`. */
type Shape = { seq: true; steps: number; width: number } | { seq: false; width: number };

/** One layer with its arrays as Float64Array, ready to run. */
type Compiled =
  | { type: 'conv1d'; inC: number; f: number; k: number; padL: number; kernel: Float64Array; bias: Float64Array; relu: boolean }
  | { type: 'maxpool1d'; pool: number }
  | { type: 'lstm' | 'gru'; inS: number; u: number; kernel: Float64Array; rec: Float64Array; bias: Float64Array; seqOut: boolean }
  | { type: 'globalavgpool1d' }
  | { type: 'dense'; inS: number; u: number; kernel: Float64Array; bias: Float64Array; act: 'linear' | 'relu' | 'softmax' };

/**
 * Runs the network on every window of `x` (`x.rows` windows of `steps × channels`, flattened
 * step-major). Returns `rows × units` of the last dense layer, after its activation (probabilities
 * for a softmax head). Throws `Errors.badData` when `x` has the wrong width.
 */
export function seqnetForward(w: SeqNetWeights, x: Matrix): Float64Array {
  return compileSeqNet(w)(x);
}

/**
 * Prepares `w` once (typed copies of its arrays) and returns the forward pass over a batch; a
 * model that predicts often keeps the returned function. `w` must have been validated.
 */
export function compileSeqNet(w: SeqNetWeights): (x: Matrix) => Float64Array {
  const layers = w.layers.map(compileLayer);
  const inWidth = w.steps * w.channels;
  // Sizes of every intermediate, to allocate two ping-pong buffers once per call.
  let shape: Shape = { seq: true, steps: w.steps, width: w.channels };
  let biggest = inWidth;
  let scratch = 0;
  for (const l of layers) {
    shape = nextShape(l, shape);
    biggest = Math.max(biggest, shape.seq ? shape.steps * shape.width : shape.width);
    if (l.type === 'lstm') scratch = Math.max(scratch, 6 * l.u);
    if (l.type === 'gru') scratch = Math.max(scratch, 8 * l.u);
  }
  const outUnits = shape.width;
  return (x: Matrix) => {
    if (x.cols !== inWidth)
      throw Errors.badData('', `expected windows of ${w.steps} steps × ${w.channels} channels = ${inWidth} values per row, got ${x.cols}`);
    if (x.data.length < x.rows * x.cols) throw Errors.badData('', `x holds ${x.data.length} values for ${x.rows} rows × ${x.cols}`);
    const out = new Float64Array(x.rows * outUnits);
    let a = new Float64Array(biggest);
    let b = new Float64Array(biggest);
    const tmp = new Float64Array(scratch);
    for (let r = 0; r < x.rows; r++) {
      a.set(x.data.subarray(r * inWidth, (r + 1) * inWidth));
      let s: Shape = { seq: true, steps: w.steps, width: w.channels };
      for (const l of layers) {
        s = runLayer(l, s, a, b, tmp);
        const t = a;
        a = b;
        b = t;
      }
      out.set(a.subarray(0, outUnits), r * outUnits);
    }
    return out;
  };
}

function compileLayer(l: SeqLayer): Compiled {
  switch (l.type) {
    case 'conv1d':
      return {
        type: 'conv1d',
        inC: l.inChannels,
        f: l.filters,
        k: l.kernelSize,
        padL: Math.floor((l.kernelSize - 1) / 2),
        kernel: Float64Array.from(l.kernel),
        bias: Float64Array.from(l.bias),
        relu: l.activation === 'relu',
      };
    case 'maxpool1d':
      return { type: 'maxpool1d', pool: l.pool };
    case 'lstm':
    case 'gru':
      return {
        type: l.type,
        inS: l.inputSize,
        u: l.units,
        kernel: Float64Array.from(l.kernel),
        rec: Float64Array.from(l.recurrentKernel),
        bias: Float64Array.from(l.bias),
        seqOut: l.returnSequences,
      };
    case 'globalavgpool1d':
      return { type: 'globalavgpool1d' };
    case 'dense':
      return { type: 'dense', inS: l.inputSize, u: l.units, kernel: Float64Array.from(l.kernel), bias: Float64Array.from(l.bias), act: l.activation };
  }
}

function nextShape(l: Compiled, s: Shape): Shape {
  const steps = s.seq ? s.steps : 1;
  switch (l.type) {
    case 'conv1d':
      return { seq: true, steps, width: l.f };
    case 'maxpool1d':
      return { seq: true, steps: Math.floor(steps / l.pool), width: s.width };
    case 'lstm':
    case 'gru':
      return l.seqOut ? { seq: true, steps, width: l.u } : { seq: false, width: l.u };
    case 'globalavgpool1d':
      return { seq: false, width: s.width };
    case 'dense':
      return { seq: false, width: l.u };
  }
}

const sigmoid = (v: number) => 1 / (1 + Math.exp(-v));

/** Runs one layer from `src` into `dst` and returns the output's shape. */
function runLayer(l: Compiled, s: Shape, src: Float64Array, dst: Float64Array, tmp: Float64Array): Shape {
  const steps = s.seq ? s.steps : 1;
  switch (l.type) {
    case 'conv1d': {
      const { inC, f, k, padL, kernel, bias } = l;
      for (let t = 0; t < steps; t++) {
        const o = t * f;
        for (let j = 0; j < f; j++) dst[o + j] = bias[j]!;
        for (let q = 0; q < k; q++) {
          const ts = t - padL + q;
          if (ts < 0 || ts >= steps) continue;
          for (let c = 0; c < inC; c++) {
            const v = src[ts * inC + c]!;
            if (v === 0) continue;
            const kr = (q * inC + c) * f;
            for (let j = 0; j < f; j++) dst[o + j] += v * kernel[kr + j]!;
          }
        }
        if (l.relu) for (let j = 0; j < f; j++) if (dst[o + j]! < 0) dst[o + j] = 0;
      }
      return { seq: true, steps, width: f };
    }
    case 'maxpool1d': {
      const c = s.width;
      const outSteps = Math.floor(steps / l.pool);
      for (let t = 0; t < outSteps; t++) {
        for (let j = 0; j < c; j++) {
          let m = -Infinity;
          for (let p = 0; p < l.pool; p++) {
            const v = src[(t * l.pool + p) * c + j]!;
            if (v > m) m = v;
          }
          dst[t * c + j] = m;
        }
      }
      return { seq: true, steps: outSteps, width: c };
    }
    case 'lstm': {
      const { inS, u, kernel, rec, bias } = l;
      const g4 = 4 * u;
      const z = tmp.subarray(0, g4);
      const h = tmp.subarray(g4, g4 + u);
      const c = tmp.subarray(g4 + u, g4 + 2 * u);
      h.fill(0);
      c.fill(0);
      for (let t = 0; t < steps; t++) {
        z.set(bias);
        const xo = t * inS;
        for (let i = 0; i < inS; i++) {
          const v = src[xo + i]!;
          if (v === 0) continue;
          const kr = i * g4;
          for (let j = 0; j < g4; j++) z[j] += v * kernel[kr + j]!;
        }
        for (let i = 0; i < u; i++) {
          const v = h[i]!;
          if (v === 0) continue;
          const kr = i * g4;
          for (let j = 0; j < g4; j++) z[j] += v * rec[kr + j]!;
        }
        for (let j = 0; j < u; j++) {
          const ig = sigmoid(z[j]!);
          const fg = sigmoid(z[u + j]!);
          const cg = Math.tanh(z[2 * u + j]!);
          const og = sigmoid(z[3 * u + j]!);
          const cn = fg * c[j]! + ig * cg;
          c[j] = cn;
          h[j] = og * Math.tanh(cn);
        }
        if (l.seqOut) dst.set(h, t * u);
      }
      if (!l.seqOut) dst.set(h, 0);
      return l.seqOut ? { seq: true, steps, width: u } : { seq: false, width: u };
    }
    case 'gru': {
      const { inS, u, kernel, rec, bias } = l;
      const g3 = 3 * u;
      const xz = tmp.subarray(0, g3);
      const hz = tmp.subarray(g3, 2 * g3);
      const h = tmp.subarray(2 * g3, 2 * g3 + u);
      h.fill(0);
      for (let t = 0; t < steps; t++) {
        // Input part with the input bias, recurrent part with the recurrent bias (reset_after).
        xz.set(bias.subarray(0, g3));
        hz.set(bias.subarray(g3, 2 * g3));
        const xo = t * inS;
        for (let i = 0; i < inS; i++) {
          const v = src[xo + i]!;
          if (v === 0) continue;
          const kr = i * g3;
          for (let j = 0; j < g3; j++) xz[j] += v * kernel[kr + j]!;
        }
        for (let i = 0; i < u; i++) {
          const v = h[i]!;
          if (v === 0) continue;
          const kr = i * g3;
          for (let j = 0; j < g3; j++) hz[j] += v * rec[kr + j]!;
        }
        for (let j = 0; j < u; j++) {
          const zg = sigmoid(xz[j]! + hz[j]!);
          const rg = sigmoid(xz[u + j]! + hz[u + j]!);
          const hh = Math.tanh(xz[2 * u + j]! + rg * hz[2 * u + j]!);
          h[j] = zg * h[j]! + (1 - zg) * hh;
        }
        if (l.seqOut) dst.set(h, t * u);
      }
      if (!l.seqOut) dst.set(h, 0);
      return l.seqOut ? { seq: true, steps, width: u } : { seq: false, width: u };
    }
    case 'globalavgpool1d': {
      const c = s.width;
      for (let j = 0; j < c; j++) dst[j] = 0;
      for (let t = 0; t < steps; t++) for (let j = 0; j < c; j++) dst[j] += src[t * c + j]!;
      for (let j = 0; j < c; j++) dst[j] = dst[j]! / steps;
      return { seq: false, width: c };
    }
    case 'dense': {
      const { inS, u, kernel, bias } = l;
      for (let j = 0; j < u; j++) dst[j] = bias[j]!;
      for (let i = 0; i < inS; i++) {
        const v = src[i]!;
        if (v === 0) continue;
        const kr = i * u;
        for (let j = 0; j < u; j++) dst[j] += v * kernel[kr + j]!;
      }
      if (l.act === 'relu') for (let j = 0; j < u; j++) dst[j] = Math.max(0, dst[j]!);
      else if (l.act === 'softmax') {
        // Subtracting the max keeps exp() finite for any logits, as tfjs and ONNX Softmax do.
        let m = -Infinity;
        for (let j = 0; j < u; j++) if (dst[j]! > m) m = dst[j]!;
        let sum = 0;
        for (let j = 0; j < u; j++) sum += dst[j] = Math.exp(dst[j]! - m);
        for (let j = 0; j < u; j++) dst[j] = dst[j]! / sum;
      }
      return { seq: false, width: u };
    }
  }
}

/**
 * Checks that `w` is a well-formed sequence network: positive integer sizes, arrays of finite
 * numbers of the sizes the layer chain implies (each layer's input size is the previous one's
 * output), sequence layers only while the data is still a sequence, at least one output step after
 * pooling, and a last layer that is dense on a vector. Throws `Errors.manifest('seqnet', …)` naming
 * the field; returns `w` typed.
 */
export function validateSeqNetWeights(w: unknown): SeqNetWeights {
  const bad = (msg: string) => Errors.manifest('seqnet', msg);
  if (typeof w !== 'object' || w === null || Array.isArray(w)) throw bad('weights must be an object');
  const o = w as Record<string, unknown>;
  const posInt = (v: unknown, where: string, max = 1_000_000): number => {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > max) throw bad(`${where} must be an integer in [1, ${max}], got ${describe(v)}`);
    return v;
  };
  const steps = posInt(o.steps, 'weights.steps');
  const channels = posInt(o.channels, 'weights.channels');
  if (!Array.isArray(o.layers)) throw bad('weights.layers must be an array');
  const layers = o.layers as unknown[];
  if (layers.length < 1) throw bad('weights.layers is empty');
  if (layers.length > MAX_SEQ_LAYERS) throw bad(`weights.layers has ${layers.length} layers, at most ${MAX_SEQ_LAYERS} are accepted`);
  const numbers = (v: unknown, n: number, where: string): void => {
    if (!Array.isArray(v) || v.length !== n) throw bad(`${where} must hold ${n} numbers${Array.isArray(v) ? `, has ${v.length}` : ''}`);
    for (let i = 0; i < n; i++) {
      const e: unknown = v[i];
      if (typeof e !== 'number' || !Number.isFinite(e)) throw bad(`${where}[${i}] is not a finite number`);
    }
  };
  let shape: Shape = { seq: true, steps, width: channels };
  layers.forEach((raw, i) => {
    const where = `weights.layers[${i}]`;
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw bad(`${where} is not an object`);
    const l = raw as Record<string, unknown>;
    const needSeq = () => {
      if (!shape.seq) throw bad(`${where} (${String(l.type)}) needs a sequence, but the previous layer ends the sequence`);
      return shape;
    };
    const input = (key: string): number => {
      const v = posInt(l[key], `${where}.${key}`);
      if (v !== shape.width) throw bad(`${where}.${key} is ${v}, but the previous layer gives ${shape.width}`);
      return v;
    };
    switch (l.type) {
      case 'conv1d': {
        const s = needSeq();
        const inC = input('inChannels');
        const f = posInt(l.filters, `${where}.filters`);
        const k = posInt(l.kernelSize, `${where}.kernelSize`, 4096);
        if (l.padding !== 'same') throw bad(`${where}.padding must be "same"`);
        if (l.activation !== 'relu' && l.activation !== 'linear') throw bad(`${where}.activation must be relu or linear`);
        numbers(l.kernel, k * inC * f, `${where}.kernel`);
        numbers(l.bias, f, `${where}.bias`);
        shape = { seq: true, steps: s.steps, width: f };
        break;
      }
      case 'maxpool1d': {
        const s = needSeq();
        const p = posInt(l.pool, `${where}.pool`);
        if (p > s.steps) throw bad(`${where}.pool is ${p}, more than the ${s.steps} steps it pools`);
        shape = { seq: true, steps: Math.floor(s.steps / p), width: s.width };
        break;
      }
      case 'lstm':
      case 'gru': {
        const s = needSeq();
        const inS = input('inputSize');
        const u = posInt(l.units, `${where}.units`);
        const g = l.type === 'lstm' ? 4 : 3;
        if (typeof l.returnSequences !== 'boolean') throw bad(`${where}.returnSequences must be true or false`);
        numbers(l.kernel, inS * g * u, `${where}.kernel`);
        numbers(l.recurrentKernel, u * g * u, `${where}.recurrentKernel`);
        numbers(l.bias, (l.type === 'lstm' ? 1 : 2) * g * u, `${where}.bias`);
        shape = l.returnSequences ? { seq: true, steps: s.steps, width: u } : { seq: false, width: u };
        break;
      }
      case 'globalavgpool1d': {
        needSeq();
        shape = { seq: false, width: shape.width };
        break;
      }
      case 'dense': {
        if (shape.seq) throw bad(`${where} (dense) needs a vector: end the sequence first (a recurrent layer without returnSequences, or globalavgpool1d)`);
        const inS = input('inputSize');
        const u = posInt(l.units, `${where}.units`);
        const last = i === layers.length - 1;
        if (!(l.activation === 'linear' || l.activation === 'relu' || (l.activation === 'softmax' && last)))
          throw bad(`${where}.activation must be linear or relu${last ? ' or softmax' : ' (softmax only on the last layer)'}`);
        numbers(l.kernel, inS * u, `${where}.kernel`);
        numbers(l.bias, u, `${where}.bias`);
        shape = { seq: false, width: u };
        break;
      }
      default:
        throw bad(`${where}.type ${describe(l.type)} is not one of conv1d, maxpool1d, lstm, gru, globalavgpool1d, dense`);
    }
  });
  if (layers.length === 0 || (layers[layers.length - 1] as { type?: unknown }).type !== 'dense') throw bad('the last layer must be dense');
  return w as SeqNetWeights;
}

function describe(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v.length > 40 ? v.slice(0, 40) + '…' : v);
  if (typeof v === 'number' || typeof v === 'boolean' || v === null || v === undefined) return String(v);
  return Array.isArray(v) ? 'an array' : 'an object';
}

/** The number of outputs of a validated network (units of its last dense layer). */
export function seqnetOutputs(w: SeqNetWeights): number {
  const last = w.layers[w.layers.length - 1]!;
  return last.type === 'dense' ? last.units : 0;
}
