/**
 * The link functions shared by the exporters: every family ends in raw scores (logits or margins)
 * and turns them into medfit's outputs the same way its `predict` does.
 */
import type { Task } from '../../core/index.js';
import { attr, doubleTensor, floatTensor, node, type GraphParts } from './proto.js';

/** Name of the graph input: the feature tensor after the fitted pipeline. */
export const INPUT = 'input';
/** Output name of classifiers: `rows × nClasses` probabilities (binary as [1 - p, p]). */
export const PROBABILITIES = 'probabilities';
/** Output name of regressors: `rows × nOutputs` predictions (one output unless the model learnt several). */
export const VALUE = 'value';

/** The graph output a task produces. */
export function outputName(task: Task): string {
  return task === 'regression' ? VALUE : PROBABILITIES;
}

/** Columns of the task's output tensor: classes, or regression outputs (default 1). */
export function outputWidth(task: Task, nClasses: number, nOutputs?: number): number {
  return task === 'regression' ? (nOutputs ?? 1) : nClasses;
}

/**
 * How raw scores become outputs: `identity` (regression), `softmax` over one score per class, or
 * `sigmoidPair` for a single positive-class score, emitted as [1 - p, p] so binary reads like
 * multiclass.
 */
export type Head = 'identity' | 'softmax' | 'sigmoidPair';

/** The head of models with one score per class except binary, which has a single score. */
export function headFor(task: Task): Head {
  return task === 'regression' ? 'identity' : task === 'multiclass' ? 'softmax' : 'sigmoidPair';
}

/**
 * Appends `head` mapping `scores` ([N, outputs]) to the task's output tensor, of the scores' type:
 * FP32, or FP64 with `double` (the constant of the sigmoid pair is then a double).
 */
export function appendHead(parts: GraphParts, task: Task, head: Head, scores: string, double = false): void {
  const out = outputName(task);
  if (head === 'identity') {
    parts.nodes.push(node('Identity', [scores], [out]));
  } else if (head === 'softmax') {
    // Opset 13+ Softmax normalises the last axis alone, matching the per-row softmax in predict.
    parts.nodes.push(node('Softmax', [scores], [out], [attr.int('axis', -1)]));
  } else {
    const p = `${scores}_sigmoid`;
    const q = `${scores}_complement`;
    const one = `${scores}_one`;
    parts.initializers.push(double ? doubleTensor(one, [], [1]) : floatTensor(one, [], [1]));
    parts.nodes.push(node('Sigmoid', [scores], [p]));
    parts.nodes.push(node('Sub', [one, p], [q]));
    parts.nodes.push(node('Concat', [q, p], [out], [attr.int('axis', 1)]));
  }
}
