/**
 * gbdt → ONNX: `ai.onnx.ml` TreeEnsembleRegressor (ml opset 3) producing the raw margins, then the
 * shared head. The input is cast to float64 first, which buys two things in onnxruntime: the
 * kernel then keeps thresholds and accumulates leaf values in double (ORT's float kernel sums in
 * float32), and the `*_as_tensor` double attributes (leaf values, base scores) are honoured, so
 * the margins are medfit's double sums rounded once to float32 at the end. Routing is unchanged by
 * the cast: every threshold is a float32 value and a float32 input widened to double compares
 * with it exactly as `Math.fround(x) <= threshold` does.
 *
 * `n_targets` is the number of raw scores (one for binary and single-output regression, one per
 * class for multiclass, one per output for a multi-output regression) and each leaf's `target_ids`
 * entry is its tree's `target`, so several regression outputs come out as `value` [N, nOutputs].
 */
import type { Task } from '../../core/index.js';
import type { GbdtWeights } from '../gbdt/index.js';
import { appendHead, headFor, INPUT } from './heads.js';
import { attr, DataType, doubleTensor, ML_DOMAIN, node, type GraphParts } from './proto.js';

/**
 * Graph parts of a gbdt model reading `input` [N, nFeatures]; with `double`, the (FP32) margins
 * are cast to FP64 and the head and output are FP64 (what a composite graph computes in).
 */
export function gbdtGraph(task: Task, w: GbdtWeights, double = false): GraphParts {
  const k = w.baseScore.length;
  const n = { treeIds: [] as number[], nodeIds: [] as number[], features: [] as number[], modes: [] as string[] };
  const values: number[] = [];
  const trueIds: number[] = [];
  const falseIds: number[] = [];
  const missingTrue: number[] = [];
  const t = { treeIds: [] as number[], nodeIds: [] as number[], ids: [] as number[], weights: [] as number[] };
  // onnxruntime leaves a target at 0, base value not added, when no leaf votes for it (and rejects
  // an ensemble without nodes). A target without trees (only from a hand-made state; training
  // grows one per output per round) gets a one-leaf tree worth 0, which changes no sum.
  const trees = [...w.trees];
  for (let j = 0; j < k; j++) {
    if (!trees.some((tr) => tr.target === j)) trees.push({ target: j, feature: [-1], threshold: [0], left: [-1], right: [-1], value: [0] });
  }
  trees.forEach((tree, ti) => {
    for (let j = 0; j < tree.feature.length; j++) {
      const leaf = tree.feature[j]! < 0;
      n.treeIds.push(ti);
      n.nodeIds.push(j);
      n.features.push(leaf ? 0 : tree.feature[j]!);
      n.modes.push(leaf ? 'LEAF' : 'BRANCH_LEQ');
      values.push(leaf ? 0 : tree.threshold[j]!);
      // BRANCH_LEQ's "true" branch is x <= threshold, medfit's left; NaN follows it as in medfit.
      trueIds.push(leaf ? 0 : tree.left[j]!);
      falseIds.push(leaf ? 0 : tree.right[j]!);
      missingTrue.push(leaf ? 0 : 1);
      if (leaf) {
        t.treeIds.push(ti);
        t.nodeIds.push(j);
        t.ids.push(tree.target);
        t.weights.push(tree.value[j]!);
      }
    }
  });
  const ensemble = node(
    'TreeEnsembleRegressor',
    ['input_f64'],
    ['margin'],
    [
      attr.int('n_targets', k),
      attr.string('aggregate_function', 'SUM'),
      attr.string('post_transform', 'NONE'),
      attr.tensor('base_values_as_tensor', doubleTensor('base_values', [k], w.baseScore)),
      attr.ints('nodes_treeids', n.treeIds),
      attr.ints('nodes_nodeids', n.nodeIds),
      attr.ints('nodes_featureids', n.features),
      attr.strings('nodes_modes', n.modes),
      // Thresholds are float32 values by construction (checked at load), so the float attribute
      // is exact; it is also what runtimes without `nodes_values_as_tensor` support read.
      attr.floats('nodes_values', values),
      attr.ints('nodes_truenodeids', trueIds),
      attr.ints('nodes_falsenodeids', falseIds),
      attr.ints('nodes_missing_value_tracks_true', missingTrue),
      attr.ints('target_treeids', t.treeIds),
      attr.ints('target_nodeids', t.nodeIds),
      attr.ints('target_ids', t.ids),
      attr.tensor('target_weights_as_tensor', doubleTensor('target_weights', [t.weights.length], t.weights)),
    ],
    ML_DOMAIN,
  );
  const parts: GraphParts = {
    nodes: [node('Cast', [INPUT], ['input_f64'], [attr.int('to', DataType.DOUBLE)]), ensemble],
    initializers: [],
    usesMl: true,
  };
  if (double) {
    // TreeEnsembleRegressor writes FP32 whatever its input: the margins are rounded once there.
    parts.nodes.push(node('Cast', ['margin'], ['margin_f64'], [attr.int('to', DataType.DOUBLE)]));
    appendHead(parts, task, headFor(task), 'margin_f64', true);
  } else appendHead(parts, task, headFor(task), 'margin');
  return parts;
}
