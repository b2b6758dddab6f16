#!/usr/bin/env python3
"""Golden values for medfit's reliability bins (src/eval/plots.ts `reliabilityBins`), computed
with scikit-learn's calibration_curve(strategy='uniform').

Regenerate (deterministic; needs Debian's python3-sklearn 1.2.x and python3-numpy):

    /usr/bin/python3 scripts/golden_reliability.py

It rewrites test/fixtures/golden/reliability.json with every input (labels, probabilities, bin
count) and the expected non-empty bins, so the TypeScript test (src/eval/plots.test.ts) runs
offline without Python.

calibration_curve returns only each non-empty bin's observed share (prob_true) and mean
probability (prob_pred). The bins' edges and counts are not part of its result: they are
recomputed here exactly as calibration_curve 1.2 computes them internally (edges
np.linspace(0, 1, n_bins + 1), bin ids np.searchsorted(edges[1:-1], p), counts np.bincount), and
the script checks that the shares and means derived from those counts equal calibration_curve's,
so the stored counts are the ones scikit-learn averaged over.
"""

import json
import os

import numpy as np
import sklearn
from sklearn.calibration import calibration_curve
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'test', 'fixtures', 'golden', 'reliability.json')


def case(name, y, p, n_bins, note):
    y = np.asarray(y, dtype=float)
    p = np.asarray(p, dtype=float)
    prob_true, prob_pred = calibration_curve(y, p, n_bins=n_bins, strategy='uniform')
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    ids = np.searchsorted(edges[1:-1], p)
    counts = np.bincount(ids, minlength=n_bins)
    nonzero = np.flatnonzero(counts)
    # The recomputed bins must be calibration_curve's own.
    assert len(nonzero) == len(prob_true)
    assert np.array_equal(np.bincount(ids, weights=y, minlength=n_bins)[nonzero] / counts[nonzero], prob_true)
    assert np.array_equal(np.bincount(ids, weights=p, minlength=n_bins)[nonzero] / counts[nonzero], prob_pred)
    return {
        'name': name,
        'note': note,
        'bins': n_bins,
        'y': [int(v) for v in y],
        'p': [float(v) for v in p],
        'expected': [
            {
                'lower': float(edges[b]),
                'upper': float(edges[b + 1]),
                'count': int(counts[b]),
                'meanPredicted': float(prob_pred[i]),
                'observed': float(prob_true[i]),
            }
            for i, b in enumerate(nonzero)
        ],
    }


def main():
    cases = []
    rng = np.random.default_rng(11)

    # Over-confident probabilities: the truth is a flattened version of p.
    p = rng.uniform(0, 1, 600)
    y = (rng.uniform(0, 1, 600) < 0.25 + 0.5 * p).astype(int)
    cases.append(case('overconfident_10', y, p, 10, 'p ~ U(0,1), P(y=1) = 0.25 + 0.5 p'))

    # Probabilities exactly on edges (0, 0.1, 0.3 and the 0.30000000000000004 linspace makes, 1):
    # the bin below takes an edge value.
    edge_p = [0.0, 0.0, 0.1, 0.1, 0.2, 0.3, 0.30000000000000004, 0.3000000000000001, 0.5, 0.5, 0.7, 0.7000000000000001,
              0.9, 0.9, 0.95, 1.0, 1.0, 0.05, 0.55, 0.85]
    edge_y = [0, 0, 0, 1, 0, 0, 1, 1, 0, 1, 1, 0, 1, 1, 1, 1, 1, 0, 1, 0]
    cases.append(case('edges_10', edge_y, edge_p, 10, 'probabilities on and beside the edges of 10 bins'))
    cases.append(case('edges_5', edge_y, edge_p, 5, 'the same probabilities in 5 bins'))

    # Concentrated probabilities: most bins are empty (and left out).
    p = rng.uniform(0.62, 0.81, 200)
    y = (rng.uniform(0, 1, 200) < p).astype(int)
    cases.append(case('concentrated_10', y, p, 10, 'p ~ U(0.62, 0.81): empty bins left out'))

    # An awkward bin count: edges i/7 are not exact in binary.
    p = rng.beta(0.7, 1.3, 400)
    y = (rng.uniform(0, 1, 400) < p).astype(int)
    cases.append(case('beta_7', y, p, 7, 'p ~ Beta(0.7, 1.3), 7 bins; p on edges k/7 included'))
    p7 = np.concatenate([p, np.linspace(0, 1, 8)])
    y7 = np.concatenate([y, [0, 1, 0, 1, 0, 1, 0, 1]])
    cases.append(case('beta_7_edges', y7, p7, 7, 'the same plus one probability on every edge of 7 bins'))

    # Out-of-fold probabilities of a real model.
    X, y = load_breast_cancer(return_X_y=True)
    p = cross_val_predict(make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=1000)), X, y, cv=5, method='predict_proba')[:, 1]
    cases.append(case('breast_cancer_oof', y, p, 10, 'sklearn LogisticRegression(C=0.1) on load_breast_cancer, cross_val_predict(cv=5)'))

    doc = {
        'generator': 'scripts/golden_reliability.py (run with /usr/bin/python3)',
        'versions': {'sklearn': sklearn.__version__, 'numpy': np.__version__},
        'cases': cases,
    }
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, 'w') as fh:
        json.dump(doc, fh, allow_nan=False, separators=(',', ':'))
        fh.write('\n')
    print(f'wrote {os.path.relpath(OUT)}: {len(cases)} cases')


if __name__ == '__main__':
    main()
