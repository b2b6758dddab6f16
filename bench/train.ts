/**
 * Training speed: medfit's MLP (its own WebAssembly trainer, in a worker) seconds per epoch and GBDT
 * training time on the breast-cancer table, and, where Debian's python3-torch / python3-xgboost
 * are installed, the same network in PyTorch and the same boosting in XGBoost on the same
 * features, with the ratios. Medians over repeats; both sides run from this one script.
 *
 * The `lstm` case is the seed's reference sequence network: LSTM(100) on windows of 10 steps × 10
 * channels → Dropout(0.2) → Dense(1), Adam(0.001), mean squared error, batch 32, on 10,000
 * windows: medfit's `lstm` family (its own trainer, in a worker) against PyTorch's
 * `nn.LSTM(10, 100, batch_first=True) → Dropout(0.2) → Linear(100, 1)` on the same windows, both
 * as seconds per epoch (median over the epochs after the first). PyTorch runs with 2 threads and
 * with 1 (on 2 busy cores its OpenMP threads can stall), and the ratio is taken against its faster
 * run. `--with-tfjs` also times tfjs-layers' LSTM on the WASM backend (what medfit's MLP used before its own trainer).
 *
 * The `gbdt100k` case is the GBDT at XGBoost's scale: a seeded synthetic binary table of 120,000
 * rows × 30 features (10 informative with nonlinear effects and interactions, 2 of them discrete,
 * 20 noise; about balanced), the first 100,000 rows to train, the last 20,000 as the holdout; 200
 * trees of depth 6, learning rate 0.1, every row and feature, min_child_weight 1, L2 1, 255 bins
 * (XGBoost's max_bin 256 counts its missing-value bin), no early stopping. medfit (its default
 * threads, `MEDFIT_TRAIN_THREADS`, and 1 thread) and XGBoost's `hist` with 2 threads (Debian's
 * python3-xgboost, bench/gbdt_ref.py) train in turn on the same rows, each repeat; reported:
 * median seconds, medfit/xgboost (of the medians, and the median of each repeat's ratio), and
 * both holdout AUROCs.
 *
 *   npx tsx bench/train.ts [--epochs 30] [--repeats 5] [--case all|table|lstm|gbdt100k] [--seq-epochs 5] [--with-tfjs]
 */
import { spawnSync } from 'node:child_process';
import { existsSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { fitPipeline, inferSchema, encodeTarget, quantileOf, readTable, transformTable } from '../src/data/index.js';
import { Rng, take, takeRows } from '../src/core/index.js';
import { rocAuc } from '../src/eval/index.js';
import { FAMILIES } from '../src/models/index.js';
import { trainThreads } from '../src/models/gbdt/parallel.js';
import { lstm as lstmFamily } from '../src/models/seqnet/index.js';
import type { SeqNetModel } from '../src/models/seqnet/index.js';

const { values } = parseArgs({
  options: {
    epochs: { type: 'string', default: '30' },
    repeats: { type: 'string', default: '5' },
    case: { type: 'string', default: 'all' },
    'seq-epochs': { type: 'string', default: '5' },
    'with-tfjs': { type: 'boolean', default: false },
  },
});
if (!['all', 'table', 'lstm', 'gbdt100k'].includes(values.case!)) throw new Error(`--case must be all, table, lstm or gbdt100k, not ${values.case}`);
const epochs = Number(values.epochs);
const repeats = Number(values.repeats);
const units = [64, 32];
const batch = 32;
// XGBoost samples every feature for every tree by default: so does medfit here (its own default is 0.5).
const gbdtParams = { trees: 200, max_depth: 3, learning_rate: 0.05, colsample: 1 };

const median = (v: number[]) => quantileOf(Float64Array.from(v), 0.5);

if (values.case === 'all' || values.case === 'table') {
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
}

// The seed's reference sequence network against PyTorch (and, with --with-tfjs, tfjs-layers).
const TORCH_LSTM = String.raw`
import json, statistics, sys, time
cfg = json.load(open(sys.argv[1]))
try:
    import numpy as np
    import torch
except ImportError:
    print(json.dumps(None)); sys.exit(0)
n, steps, ch = cfg["rows"], cfg["steps"], cfg["channels"]
x = torch.from_numpy(np.fromfile(cfg["x"], dtype=np.float32).reshape(n, steps, ch))
y = torch.from_numpy(np.fromfile(cfg["y"], dtype=np.float32).reshape(n, 1))
class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = torch.nn.LSTM(ch, cfg["units"], batch_first=True)
        self.drop = torch.nn.Dropout(cfg["dropout"])
        self.fc = torch.nn.Linear(cfg["units"], 1)
    def forward(self, v):
        out, _ = self.lstm(v)
        return self.fc(self.drop(out[:, -1]))
res = {"version": torch.__version__, "runs": []}
for threads in cfg["threads"]:
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = Net()
    opt = torch.optim.Adam(model.parameters(), lr=cfg["lr"], eps=1e-7)
    loss_fn = torch.nn.MSELoss()
    times, cpu = [], []
    started = time.perf_counter()
    for epoch in range(cfg["epochs"]):
        # On busy cores a multi-threaded run can stall for minutes an epoch: stop it after its budget.
        if epoch >= 2 and time.perf_counter() - started > cfg["budget_seconds"]:
            break
        t0, c0 = time.perf_counter(), time.process_time()
        perm = torch.randperm(n)
        for i in range(0, n, cfg["batch"]):
            idx = perm[i : i + cfg["batch"]]
            opt.zero_grad()
            loss = loss_fn(model(x[idx]), y[idx])
            loss.backward()
            opt.step()
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    res["runs"].append({"threads": threads, "epoch_seconds": times, "median": statistics.median(times[1:] or times),
                        "cpu_median": statistics.median(cpu[1:] or cpu)})
print(json.dumps(res))
`;

if (values.case === 'all' || values.case === 'lstm') {
  const seqEpochs = Math.max(2, Number(values['seq-epochs']));
  const rows = 10000;
  const steps = 10;
  const channels = 10;
  const rng = new Rng(42);
  const xs = new Float64Array(rows * steps * channels);
  for (let i = 0; i < xs.length; i++) xs[i] = rng.normal();
  // A target the network can learn: a weighted sum over the window plus noise.
  const ys = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    let v = 0;
    for (let t = 0; t < steps; t++) v += xs[r * 100 + t * 10]! * (t + 1) * 0.1 - 0.5 * xs[r * 100 + t * 10 + 1]!;
    ys[r] = v + 0.1 * rng.normal();
  }
  const seqX = { rows, cols: steps * channels, data: xs };
  const sequence = { steps, channels, rate: 1, channelNames: Array.from({ length: channels }, (_, c) => `c${c}`) };
  console.log(`\nsequence data: ${rows} windows × ${steps} steps × ${channels} channels, regression; LSTM(100) → Dropout(0.2) → Dense(1), Adam(0.001), MSE, batch 32`);

  // All 10,000 windows trained on: a small given validation set keeps the family from holding 10% out.
  const validRows = Array.from({ length: 100 }, (_, i) => i * 100);
  const seqParams = lstmFamily.parseParams({ units: '100', dropout: '0.2', batch_size: 32, epochs: seqEpochs, patience: seqEpochs }, 'regression', rows);
  const seqTimes: number[] = [];
  const seqCpu: number[] = [];
  let lastT = 0;
  const w0 = performance.now();
  let lastCpu = process.cpuUsage();
  const model = (await lstmFamily.train(
    { x: seqX, y: ys, task: 'regression', nClasses: 1, sequence, valid: { x: takeRows(seqX, validRows), y: take(ys, validRows) } },
    seqParams,
    {
      seed: 0,
      onProgress: () => {
        const now = performance.now();
        seqTimes.push((now - (lastT || w0)) / 1000);
        lastT = now;
        // Process CPU time (the worker's thread and an idle main thread): what the run cost
        // whatever else the machine was doing.
        const c = process.cpuUsage(lastCpu);
        seqCpu.push((c.user + c.system) / 1e6);
        lastCpu = process.cpuUsage();
      },
    },
  )) as SeqNetModel;
  const oursEpoch = median(seqTimes.slice(1));
  const oursCpu = median(seqCpu.slice(1));
  console.log(
    `medfit lstm: ${oursEpoch.toFixed(3)} s/epoch, ${oursCpu.toFixed(3)} CPU s/epoch (medians of epochs 2–${seqTimes.length}; all: ${seqTimes.map((t) => t.toFixed(2)).join(', ')}), validation MSE ${model.info?.bestLoss.toFixed(4)} (standardized)`,
  );
  const load = loadavg()[0]!;
  if (load > cpus().length) console.log(`note: load average ${load.toFixed(1)} on ${cpus().length} cores: wall times are inflated; compare CPU seconds too`);

  const python = '/usr/bin/python3';
  if (!existsSync(python)) console.log('no /usr/bin/python3: PyTorch comparison skipped');
  else {
    const base = join(tmpdir(), `medfit-bench-seq-${process.pid}`);
    writeFileSync(`${base}.x`, Float32Array.from(xs));
    writeFileSync(`${base}.y`, Float32Array.from(ys));
    writeFileSync(
      `${base}.json`,
      JSON.stringify({ x: `${base}.x`, y: `${base}.y`, rows, steps, channels, units: 100, dropout: 0.2, lr: 0.001, batch: 32, epochs: seqEpochs, threads: [2, 1], budget_seconds: 120 }),
    );
    const r = spawnSync(python, ['-c', TORCH_LSTM, `${base}.json`], { encoding: 'utf8' });
    for (const ext of ['x', 'y', 'json']) rmSync(`${base}.${ext}`, { force: true });
    const ref = r.status === 0 ? (JSON.parse(r.stdout) as { version: string; runs: { threads: number; epoch_seconds: number[]; median: number; cpu_median: number }[] } | null) : undefined;
    if (ref === undefined) console.log(`PyTorch reference failed: ${r.stderr.trim().split('\n').pop()}`);
    else if (ref === null) console.log('python3-torch (or numpy) not installed: PyTorch comparison skipped');
    else {
      for (const run of ref.runs)
        console.log(
          `pytorch ${ref.version}, ${run.threads} thread(s): ${run.median.toFixed(3)} s/epoch, ${run.cpu_median.toFixed(3)} CPU s/epoch (all: ${run.epoch_seconds.map((t) => t.toFixed(2)).join(', ')})`,
        );
      const best = Math.min(...ref.runs.map((run) => run.median));
      console.log(`medfit lstm / pytorch (its faster run), wall time: ${(oursEpoch / best).toFixed(2)}×`);
      const single = ref.runs.find((run) => run.threads === 1);
      if (single) console.log(`medfit lstm / pytorch 1 thread, CPU time (both single-threaded): ${(oursCpu / single.cpu_median).toFixed(2)}×`);
    }
  }

  if (values['with-tfjs']) {
    // tfjs-layers' LSTM on the WASM backend, model.fit: the engine medfit used before its own trainer.
    const { ensureBackend } = await import('../src/models/mlp/engine.js');
    const tf = await import('@tensorflow/tfjs-core');
    const tfl = await import('@tensorflow/tfjs-layers');
    await ensureBackend();
    const m = tfl.sequential();
    // tfjs 4.22's orthogonal initializer fails on this shape; the initial values do not change the time.
    m.add(tfl.layers.lstm({ units: 100, inputShape: [steps, channels], recurrentActivation: 'sigmoid', recurrentInitializer: 'glorotUniform' }));
    m.add(tfl.layers.dropout({ rate: 0.2 }));
    m.add(tfl.layers.dense({ units: 1 }));
    m.compile({ optimizer: tf.train.adam(0.001), loss: 'meanSquaredError' });
    const tx = tf.tensor3d(Float32Array.from(xs), [rows, steps, channels]);
    const ty = tf.tensor2d(Float32Array.from(ys), [rows, 1]);
    const tfTimes: number[] = [];
    let t0 = 0;
    await m.fit(tx, ty, {
      batchSize: 32,
      epochs: 2,
      verbose: 0,
      callbacks: {
        onEpochBegin: async () => {
          t0 = performance.now();
        },
        onEpochEnd: async () => {
          tfTimes.push((performance.now() - t0) / 1000);
        },
      },
    });
    console.log(`tfjs-layers ${tf.version_core} (WASM) same LSTM, model.fit: ${tfTimes[tfTimes.length - 1]!.toFixed(2)} s/epoch (all: ${tfTimes.map((t) => t.toFixed(2)).join(', ')}) → ${(tfTimes[tfTimes.length - 1]! / oursEpoch).toFixed(1)}× medfit lstm`);
  }
}

// GBDT at XGBoost's scale (see the header): medfit and XGBoost train in turn on the same rows.
if (values.case === 'all' || values.case === 'gbdt100k') {
  const rows = 120_000;
  const trainRows = 100_000;
  const cols = 30;
  const rng = new Rng(7);
  const xs = new Float64Array(rows * cols);
  const ys = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    for (let j = 0; j < cols; j++) xs[o + j] = rng.normal();
    // Two discrete features, with the ties real tables have.
    xs[o + 8] = Math.round(xs[o + 8]! * 2);
    xs[o + 9] = rng.int(5);
    const v = (j: number) => xs[o + j]!;
    const z = 1.2 * v(0) - v(1) + 0.9 * v(2) * v(3) + 1.5 * Math.sin(1.5 * v(4)) + (v(5) > 0.5 ? 1.2 : -0.4) + 0.6 * v(6) * v(6) - 0.6 + 0.7 * Math.abs(v(7)) * v(8) + 0.3 * (v(9) - 2);
    ys[r] = rng.next() < 1 / (1 + Math.exp(-3 * z)) ? 1 : 0;
  }
  let positives = 0;
  for (let r = 0; r < trainRows; r++) positives += ys[r]!;
  const train = { x: { rows: trainRows, cols, data: xs.subarray(0, trainRows * cols) }, y: ys.subarray(0, trainRows), task: 'binary' as const, nClasses: 2 };
  const holdout = { rows: rows - trainRows, cols, data: xs.subarray(trainRows * cols) };
  const holdoutY = ys.subarray(trainRows);
  const params = { trees: 200, max_depth: 6, learning_rate: 0.1, colsample: 1, subsample: 1, min_samples_leaf: 1, min_child_weight: 1, l2: 1, min_split_gain: 0, max_bins: 255, max_leaves: 0, early_stopping_rounds: 0 };
  const gp = FAMILIES.gbdt.parseParams(params, 'binary', trainRows);
  const threads = trainThreads();
  console.log(`\ngbdt100k data: ${trainRows} training rows × ${cols} features (positive rate ${(positives / trainRows).toFixed(3)}), ${rows - trainRows} holdout rows; ${JSON.stringify(params)}`);

  // One medfit training; `threads` 1 runs it as MEDFIT_TRAIN_THREADS=1 would.
  const medfit = async (one: boolean): Promise<{ seconds: number; auroc: number }> => {
    const saved = process.env['MEDFIT_TRAIN_THREADS'];
    if (one) process.env['MEDFIT_TRAIN_THREADS'] = '1';
    try {
      const t0 = performance.now();
      const model = await FAMILIES.gbdt.train(train, gp, { seed: 0 });
      const seconds = (performance.now() - t0) / 1000;
      const p = model.predict(holdout);
      const score = new Float64Array(holdout.rows);
      for (let i = 0; i < holdout.rows; i++) score[i] = p[i * 2 + 1]!;
      return { seconds, auroc: rocAuc(holdoutY, score) };
    } finally {
      if (saved === undefined) delete process.env['MEDFIT_TRAIN_THREADS'];
      else process.env['MEDFIT_TRAIN_THREADS'] = saved;
    }
  };

  const python = '/usr/bin/python3';
  const base = join(tmpdir(), `medfit-bench-gbdt-${process.pid}`);
  writeFileSync(`${base}.x`, Float32Array.from(xs));
  writeFileSync(`${base}.y`, Float32Array.from(ys));
  writeFileSync(
    `${base}.json`,
    JSON.stringify({ x: `${base}.x`, y: `${base}.y`, rows, cols, train_rows: trainRows, trees: 200, depth: 6, lr: 0.1, max_bin: 256, min_child_weight: 1, reg_lambda: 1, threads: 2, repeats: 1 }),
  );
  // Turns: medfit, medfit on 1 thread, XGBoost, so that a busy spell on the shared cores falls on all of them.
  const ours: { seconds: number; auroc: number }[] = [];
  const ours1: { seconds: number; auroc: number }[] = [];
  const xgb: { seconds: number; auroc: number }[] = [];
  let xgbVersion = '';
  let xgbNote = existsSync(python) ? '' : 'no /usr/bin/python3: XGBoost comparison skipped';
  try {
    for (let r = 0; r < repeats; r++) {
      ours.push(await medfit(false));
      if (threads > 1) ours1.push(await medfit(true));
      if (xgbNote) continue;
      const run = spawnSync(python, [new URL('./gbdt_ref.py', import.meta.url).pathname, `${base}.json`], { encoding: 'utf8' });
      const ref = run.status === 0 ? (JSON.parse(run.stdout) as { version: string; seconds: number[]; auroc: number } | null) : undefined;
      if (ref === undefined) xgbNote = `XGBoost reference failed: ${run.stderr.trim().split('\n').pop()}`;
      else if (ref === null) xgbNote = 'python3-xgboost (or python3-sklearn) not installed: XGBoost comparison skipped';
      else {
        xgbVersion = ref.version;
        xgb.push({ seconds: ref.seconds[0]!, auroc: ref.auroc });
      }
    }
  } finally {
    for (const ext of ['x', 'y', 'json']) rmSync(`${base}.${ext}`, { force: true });
  }
  const line = (name: string, runs: { seconds: number; auroc: number }[]) => {
    const s = median(runs.map((x) => x.seconds));
    console.log(`${name}: ${s.toFixed(3)} s (median of ${runs.length}; all: ${runs.map((x) => x.seconds.toFixed(2)).join(', ')}), holdout AUROC ${runs[0]!.auroc.toFixed(4)}`);
    return s;
  };
  const oursTime = line(`medfit gbdt, ${threads} thread(s)`, ours);
  if (ours1.length > 0) line('medfit gbdt, 1 thread', ours1);
  if (xgb.length > 0) {
    const xgbTime = line(`xgboost ${xgbVersion} hist, 2 threads`, xgb);
    console.log(`medfit/xgboost = ${(oursTime / xgbTime).toFixed(2)}× (time), holdout AUROC ${ours[0]!.auroc.toFixed(4)} vs ${xgb[0]!.auroc.toFixed(4)} (Δ ${(ours[0]!.auroc - xgb[0]!.auroc).toFixed(4)})`);
    // Each repeat's two runs are seconds apart, so their ratio is the one a busy spell of the shared
    // cores (which can last a whole run) distorts least.
    const paired = xgb.map((x, i) => ours[i]!.seconds / x.seconds);
    console.log(`medfit/xgboost per repeat: ${paired.map((r) => r.toFixed(2)).join(', ')}; median ${median(paired).toFixed(2)}×`);
  } else console.log(xgbNote);
  const load = loadavg()[0]!;
  if (load > cpus().length) console.log(`note: load average ${load.toFixed(1)} on ${cpus().length} cores: wall times are inflated`);
}
