/**
 * Training speed: medfit's MLP (TensorFlow.js on WASM, in a worker) seconds per epoch and GBDT
 * training time on the breast-cancer table, and, where Debian's python3-torch / python3-xgboost
 * are installed, the same network in PyTorch and the same boosting in XGBoost on the same
 * features, with the ratios. Medians over repeats; both sides run from this one script.
 *
 *   npx tsx bench/train.ts [--epochs 30] [--repeats 5]
 */
import { spawnSync } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { fitPipeline, inferSchema, encodeTarget, quantileOf, readTable, transformTable } from '../src/data/index.js';
import { take, takeRows } from '../src/core/index.js';
import { FAMILIES } from '../src/models/index.js';

const { values } = parseArgs({ options: { epochs: { type: 'string', default: '30' }, repeats: { type: 'string', default: '5' } } });
const epochs = Number(values.epochs);
const repeats = Number(values.repeats);
const units = [64, 32];
const batch = 32;
// XGBoost samples every feature for every tree by default: so does medfit here (its own default is 0.5).
const gbdtParams = { trees: 200, max_depth: 3, learning_rate: 0.05, colsample: 1 };

const median = (v: number[]) => quantileOf(Float64Array.from(v), 0.5);

const table = await readTable(new URL('../test/fixtures/breast_cancer_wdbc.csv', import.meta.url).pathname);
const { schema } = inferSchema(table, { target: 'diagnosis' });
const target = encodeTarget(table, 'diagnosis', 'categorical', 'binary');
const pipeline = fitPipeline(table, schema, target.rows);
const x = transformTable(pipeline, table, target.rows).x;
const y = target.y;
const data = { x, y, task: 'binary' as const, nClasses: 2 };
console.log(`data: breast_cancer_wdbc.csv, ${x.rows} rows × ${x.cols} features`);

// MLP: per-epoch times from the worker's progress events (steady state, after the first epoch,
// which includes tfjs's kernel warm-up); the wall time includes starting the worker.
// The reference network exactly: no dropout, no L2, all rows trained on (a small given
// validation set keeps the MLP from holding out 10% of the rows for early stopping).
const mlpParams = FAMILIES.mlp.parseParams({ units: units.join(','), batch_size: batch, epochs, patience: epochs, dropout: 0, l2: 0 }, 'binary', x.rows);
const validRows = Array.from({ length: 57 }, (_, i) => i * 10);
const epochTimes: number[] = [];
let last = 0;
const wall0 = performance.now();
await FAMILIES.mlp.train({ ...data, valid: { x: takeRows(x, validRows), y: take(y, validRows) } }, mlpParams, {
  seed: 0,
  onProgress: (p) => {
    if (p.epoch === undefined) return;
    const now = performance.now();
    if (last) epochTimes.push((now - last) / 1000);
    last = now;
  },
});
const mlpWall = (performance.now() - wall0) / 1000;
const mlpEpoch = median(epochTimes);
console.log(`medfit mlp [${units}] batch ${batch}: ${mlpEpoch.toFixed(4)} s/epoch (median of ${epochTimes.length}), ${mlpWall.toFixed(2)} s wall for ${epochs} epochs incl. worker start`);

const gbdtTimes: number[] = [];
const gp = FAMILIES.gbdt.parseParams(gbdtParams, 'binary', x.rows);
for (let r = 0; r < repeats; r++) {
  const t0 = performance.now();
  await FAMILIES.gbdt.train(data, gp, { seed: r });
  gbdtTimes.push((performance.now() - t0) / 1000);
}
const gbdtTime = median(gbdtTimes);
console.log(`medfit gbdt ${JSON.stringify(gbdtParams)}: ${gbdtTime.toFixed(4)} s (median of ${repeats})`);

const python = '/usr/bin/python3';
if (!existsSync(python)) {
  console.log('no /usr/bin/python3: PyTorch and XGBoost comparisons skipped');
} else {
  // The reference trains on exactly the features medfit's pipeline produced.
  const cfgPath = join(tmpdir(), `medfit-bench-${process.pid}.json`);
  const rows = Array.from({ length: x.rows }, (_, i) => Array.from(x.data.subarray(i * x.cols, (i + 1) * x.cols)));
  writeFileSync(cfgPath, JSON.stringify({ x: rows, y: Array.from(y), epochs, batch, units, trees: gbdtParams.trees, depth: gbdtParams.max_depth, lr: gbdtParams.learning_rate, repeats, threads: 2 }));
  const r = spawnSync(python, [new URL('./train_ref.py', import.meta.url).pathname, cfgPath], { encoding: 'utf8' });
  if (r.status !== 0) {
    console.log(`reference script failed: ${r.stderr.trim().split('\n').pop()}`);
  } else {
    const ref = JSON.parse(r.stdout) as { torch: { version: string; epoch_seconds_median: number } | null; xgboost: { version: string; seconds_median: number } | null };
    if (ref.torch) {
      console.log(`pytorch ${ref.torch.version} same MLP: ${ref.torch.epoch_seconds_median.toFixed(4)} s/epoch → medfit/pytorch = ${(mlpEpoch / ref.torch.epoch_seconds_median).toFixed(2)}×`);
    } else console.log('python3-torch not installed: PyTorch comparison skipped');
    if (ref.xgboost) {
      console.log(`xgboost ${ref.xgboost.version} same boosting: ${ref.xgboost.seconds_median.toFixed(4)} s → medfit/xgboost = ${(gbdtTime / ref.xgboost.seconds_median).toFixed(2)}×`);
    } else console.log('python3-xgboost not installed: XGBoost comparison skipped');
  }
}
