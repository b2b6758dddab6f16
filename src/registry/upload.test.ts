import { mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import * as b from '../../test/onnx-builders.js';
import { MedfitError } from '../core/index.js';
import { canonical } from './integrity.js';
import { checkDeclaration, checkUpload, loadUpload, prepareUpload, readUploadInfo, saveUpload, sha256, type UploadDeclaration } from './index.js';

const KEY = 'upload-signing-key-0123456789abcdef';
const decl: UploadDeclaration = { task: 'binary', features: ['a', 'b', 'c'], classes: ['no', 'yes'] };

function refused(f: () => unknown): MedfitError {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(MedfitError);
    expect((e as MedfitError).code).toBe('MEDFIT_ERR_BAD_DATA');
    return e as MedfitError;
  }
  throw new Error('expected a refusal');
}

describe('checkDeclaration', () => {
  it('refuses inconsistent tasks and classes, naming the field', () => {
    expect(refused(() => checkDeclaration({ task: 'binary', features: ['a'] })).details).toEqual([{ pointer: '/classes', message: 'a classification model needs its class labels, in output order' }]);
    expect(refused(() => checkDeclaration({ task: 'binary', features: ['a'], classes: ['x', 'y', 'z'] })).message).toBe('/classes: a binary model has 2 classes, 3 were given');
    expect(refused(() => checkDeclaration({ task: 'regression', features: ['a'], classes: ['x', 'y'] })).message).toBe('/classes: a regression model has no classes');
    expect(refused(() => checkDeclaration({ task: 'multiclass', features: ['a'], classes: ['x', 'x', 'y'] })).message).toBe('/classes: class labels must be unique');
    expect(refused(() => checkDeclaration({ task: 'multiclass', features: ['a', 'b', 'a'], classes: ['x', 'y'] })).details[0]!.pointer).toBe('/features/2');
    expect(refused(() => checkDeclaration({ task: 'survival' as 'binary', features: ['a'] })).details[0]!.pointer).toBe('/task');
    expect(() => checkDeclaration({ task: 'multiclass', features: ['a'], classes: ['x', 'y', 'z'] })).not.toThrow();
  });
});

describe('checkUpload: the signature medfit serves, from the graph and the declaration', () => {
  const variant = (edit: (g: b.Graph) => void) => {
    const m = b.model(b.classifierGraph());
    edit(m.graph!);
    return b.encode(m);
  };

  it('derives input and output from the graph', () => {
    const { info } = checkUpload(b.classifier(), decl);
    expect(info).toEqual({ ...decl, inputs: [{ name: 'x', datatype: 'FP32', shape: [-1, 3] }], outputs: [{ name: 'probs', datatype: 'FP32', shape: [-1, 2] }] });
    const summed = variant((g) => {
      g.initializer!.push(b.int64s('axes', [1], [1]));
      g.node!.push(b.node('ReduceSum', ['probs', 'axes'], ['total'], [{ name: 'keepdims', type: b.A.INT, i: 1 }]));
      g.output!.push(b.vi('total', ['N', 1]));
    });
    const reg = checkUpload(summed, { task: 'regression', features: ['a', 'b', 'c'], output: 'total' });
    expect(reg.info.outputs).toEqual([{ name: 'total', datatype: 'FP32', shape: [-1, 1] }]);
  });

  it('refuses inputs that are not FP32 [-1, features]', () => {
    expect(refused(() => checkUpload(variant((g) => (g.input = [b.vi('x', ['N', 3], 7)])), decl)).message).toBe('/onnx: input "x" is INT64, not FP32 [-1, 3]');
    expect(refused(() => checkUpload(variant((g) => (g.input = [b.vi('x', ['N', 3], 11)])), decl)).message).toBe('/onnx: input "x" is FP64, not FP32 [-1, 3]');
    expect(refused(() => checkUpload(variant((g) => (g.input = [b.vi('x', ['N', 1, 3])])), decl)).message).toBe('/onnx: input "x" has 3 dimension(s), not FP32 [-1, 3]');
    expect(refused(() => checkUpload(variant((g) => (g.input = [b.vi('x', [1, 3])])), decl)).message).toMatch(/input "x" has a fixed batch size/);
    expect(refused(() => checkUpload(b.classifier(), { ...decl, features: ['a', 'b'] })).message).toBe('/onnx: input "x" takes 3 features, the declaration lists 2');
    expect(refused(() => checkUpload(variant((g) => g.input!.push(b.vi('y', ['N', 3]))), decl)).message).toBe('/onnx: the model has 2 inputs; medfit feeds exactly one, FP32 [-1, 3]');
    // Initializers listed among the inputs (IR < 4) are not inputs to feed.
    expect(() => checkUpload(variant((g) => g.input!.push(b.vi('W', [3, 2]))), decl)).not.toThrow();
  });

  it('refuses outputs that are missing, not tensors, not numeric, or of another width', () => {
    expect(refused(() => checkUpload(b.classifier(), { ...decl, output: 'scores' })).details).toEqual([{ pointer: '/output', message: 'the model has no output "scores" (it has "probs")' }]);
    expect(refused(() => checkUpload(b.classifier(), { task: 'multiclass', features: ['a', 'b', 'c'], classes: ['p', 'q', 'r'] })).message).toBe('/onnx: output "probs" has 2 column(s), the declaration implies 3');
    expect(refused(() => checkUpload(variant((g) => (g.output = [{ name: 'probs', type: { sequenceType: { elemType: { tensorType: { elemType: 1 } } } } }])), decl)).message).toMatch(/output "probs" is not a tensor \(a sequence or a map, such as scikit-learn's ZipMap\)/);
    expect(refused(() => checkUpload(variant((g) => (g.output = [b.vi('probs', ['N', 2], 8)])), decl)).message).toMatch(/output "probs" is STRING; medfit reads FP32, FP64, INT32 or INT64 outputs/);
  });
});

describe('saving and loading an upload', () => {
  const root = mkdtempSync(join(tmpdir(), 'medfit-upload-'));

  it('stores the re-encoded model and a sealed upload.json, and loads both back verified', () => {
    const prepared = prepareUpload(b.classifier(), decl);
    const plain = join(root, 'plain');
    const record = saveUpload(plain, prepared);
    expect(readdirSync(plain).sort()).toEqual(['model.onnx', 'upload.json']);
    expect(record).toMatchObject({ formatVersion: 1, integrityAlgorithm: 'sha256', files: { 'model.onnx': sha256(prepared.onnx) } });
    expect(loadUpload(plain)).toEqual({ info: prepared.info, onnx: Buffer.from(prepared.onnx) });
    expect(readUploadInfo(plain)).toEqual(prepared.info);
    const signed = join(root, 'signed');
    expect(saveUpload(signed, prepared, { key: KEY }).integrityAlgorithm).toBe('hmac-sha256');
    expect(loadUpload(signed, { key: KEY }).info).toEqual(prepared.info);
    expect(() => loadUpload(signed)).toThrow(/upload\.json is signed \(HMAC-SHA256\): set MEDFIT_MANIFEST_KEY/);
    expect(() => loadUpload(signed, { key: KEY.replace('0', '1') })).toThrow(/upload\.json does not match its signature/);
    expect(() => loadUpload(plain, { key: KEY })).toThrow(/upload\.json is not signed/);
    expect(() => saveUpload(plain, prepared)).toThrow(/already exists/);
    expect(readdirSync(root).sort()).toEqual(['plain', 'signed']);
  });

  function copy(name: string, edit: (dir: string) => void): string {
    const dir = join(root, `c-${name}`);
    mkdirSync(dir);
    for (const f of ['model.onnx', 'upload.json']) writeFileSync(join(dir, f), readFileSync(join(root, 'plain', f)));
    edit(dir);
    return dir;
  }
  const editRecord = (dir: string, edit: (r: Record<string, unknown>) => void, reseal = true) => {
    const r = JSON.parse(readFileSync(join(dir, 'upload.json'), 'utf8')) as Record<string, unknown>;
    edit(r);
    if (reseal) {
      delete r['integrity'];
      r['integrity'] = sha256(canonical(r));
    }
    writeFileSync(join(dir, 'upload.json'), JSON.stringify(r));
  };

  it('refuses a swapped model, an edited record, a malformed one and one from before records were sealed', () => {
    const swapped = copy('swapped', (d) => writeFileSync(join(d, 'model.onnx'), b.exfiltrator('x')));
    expect(() => loadUpload(swapped)).toThrow(/model\.onnx does not match its SHA-256 in upload\.json/);
    const edited = copy('edited', (d) => editRecord(d, (r) => (r['task'] = 'multiclass'), false));
    expect(() => loadUpload(edited)).toThrow(/upload\.json was changed after it was saved/);
    const malformed = copy('malformed', (d) => editRecord(d, (r) => (r['inputs'] = [{ name: 'x', datatype: 'FP32', shape: [-1, 9] }])));
    expect(() => loadUpload(malformed)).toThrow(/upload\.json is malformed \(inputs\)/);
    const legacy = copy('legacy', (d) => writeFileSync(join(d, 'upload.json'), JSON.stringify({ task: 'binary', features: ['a', 'b', 'c'], classes: ['no', 'yes'], inputs: [], outputs: [] })));
    expect(() => loadUpload(legacy)).toThrow(/upload\.json was written by an older medfit, without a checked model or an integrity record: upload the model again/);
  });
});
