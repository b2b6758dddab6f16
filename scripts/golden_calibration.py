#!/usr/bin/env python3
"""Golden values for medfit's calibrators (src/eval/calibrators.ts), computed with scikit-learn's
own calibration code: CalibratedClassifierCV(cv='prefit') around a frozen classifier that returns
the case's stored scores, so `_fit_calibrator`, `_SigmoidCalibration`, `IsotonicRegression(
out_of_bounds='clip')` and `_CalibratedClassifier.predict_proba` (one-vs-rest, renormalised) are
exactly the ones that run in scikit-learn.

Regenerate (deterministic; needs Debian's python3-sklearn 1.2.x, python3-scipy, python3-numpy):

    /usr/bin/python3 scripts/golden_calibration.py

It rewrites test/fixtures/golden/calibration.json with every input (scores, labels, query points)
and every expected value, so src/eval/calibrators.test.ts runs offline without Python.

What is stored, per case:
  - platt: scikit-learn's fitted (a_, b_) for each calibrated column, *and* the exact minimiser of
    the same objective (Platt's smoothed targets, prior-based start), found here by a NumPy Newton
    iteration run to machine precision. scikit-learn minimises with scipy's fmin_bfgs at its
    default gtol=1e-5 (gradient infinity-norm), so its (a_, b_) sit within ~1e-5 / curvature of
    the minimiser; medfit minimises by Newton to machine precision. scikit-learn's sign
    convention is p = expit(-(a_ s + b_)); medfit stores a = -a_, b = -b_ (p = sigmoid(a s + b)).
  - isotonic: X_thresholds_ and y_thresholds_ (after _make_unique, PAVA and trimming) and the
    predictions at the query points.
  - predict_proba of the calibrated classifier on the query rows (rows x classes).
  - refuse: a fold where a calibrated column has one class only. scikit-learn fits anyway (Platt's
    smoothed targets give a finite answer; isotonic gives a constant); medfit refuses.

"score input" is what the frozen classifier hands scikit-learn: `predict_proba` (medfit input
'probability': the positive column for binary, every column for multiclass) or
`decision_function` (medfit input 'logit': logit of the probability clipped to [1e-15, 1 - 1e-15]).
"""

import json
import os
import warnings

import numpy as np
import scipy
import scipy.special
import sklearn
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.calibration import CalibratedClassifierCV
from sklearn.isotonic import IsotonicRegression

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'test', 'fixtures', 'golden', 'calibration.json')
LOGIT_EPS = 1e-15  # medfit clips p to [1e-15, 1 - 1e-15] before the logit (as src/eval/calibration.ts)


def logit_clipped(p):
    p = np.clip(np.asarray(p, dtype=float), LOGIT_EPS, 1 - LOGIT_EPS)
    return np.log(p / (1 - p))


class FrozenProba(ClassifierMixin, BaseEstimator):
    """A fitted classifier whose predict_proba returns stored rows: X holds row indices into P."""

    def __init__(self, P=None):
        self.P = P

    def fit(self, X, y):
        self.classes_ = np.arange(self.P.shape[1])
        return self

    def predict_proba(self, X):
        return self.P[np.asarray(X, dtype=int)[:, 0]]


class FrozenLogit(FrozenProba):
    """The same, but with a decision_function (binary: logit of column 1), which sklearn prefers."""

    def decision_function(self, X):
        return logit_clipped(self.P[np.asarray(X, dtype=int)[:, 0], 1])


def platt_exact(F, y):
    """The minimiser of _sigmoid_calibration's objective, by Newton's method to machine precision.

    Same targets, same start as scikit-learn 1.2 (_sigmoid_calibration); sign as medfit:
    p = expit(a F + b)."""
    F = np.asarray(F, dtype=float)
    prior0 = float(np.sum(y <= 0))
    prior1 = len(y) - prior0
    T = np.where(y > 0, (prior1 + 1.0) / (prior1 + 2.0), 1.0 / (prior0 + 2.0))
    X = np.column_stack([F, np.ones(len(F))])
    beta = np.array([0.0, -np.log((prior0 + 1.0) / (prior1 + 1.0))])

    def loss(b):
        eta = X @ b
        return float(np.sum(np.logaddexp(0, eta) - T * eta))

    for _ in range(500):
        p = scipy.special.expit(X @ beta)
        g = X.T @ (p - T)
        H = (X * (p * (1 - p))[:, None]).T @ X
        step = -np.linalg.solve(H, g)
        t = 1.0
        while loss(beta + t * step) > loss(beta) + 1e-13 * abs(loss(beta)) and t > 1e-18:
            t /= 2
        beta = beta + t * step
        if t == 1.0 and np.max(np.abs(step) / (1 + np.abs(beta))) < 1e-15:
            break
    return float(beta[0]), float(beta[1])


def fl(a):
    return [float(v) for v in np.asarray(a, dtype=float).ravel()]


def queries_for(S, extra):
    """Query scores: the training scores, the isotonic thresholds, midpoints, outside the range."""
    return np.unique(np.concatenate([np.asarray(S, dtype=float).ravel(), np.asarray(extra, dtype=float)]))


def case(name, note, P, y, method, score_input, query_P):
    """One calibration of the rows P (n x k probabilities) against labels y, as sklearn does it."""
    P = np.asarray(P, dtype=float)
    y = np.asarray(y, dtype=int)
    query_P = np.asarray(query_P, dtype=float)
    k = P.shape[1]
    est = (FrozenLogit if score_input == 'logit' else FrozenProba)(P).fit(np.zeros((len(P), 1)), y)
    cal = CalibratedClassifierCV(est, method=method, cv='prefit')
    with warnings.catch_warnings():
        warnings.simplefilter('error')  # a convergence warning from fmin_bfgs would be a bad case
        cal.fit(np.arange(len(P))[:, None], y)
    cc = cal.calibrated_classifiers_[0]
    cols = [1] if k == 2 else list(range(k))
    calibrators = []
    for col, c in zip(cols, cc.calibrators):
        yc = (y == col).astype(int)
        scores = logit_clipped(P[:, col]) if score_input == 'logit' else P[:, col]
        if method == 'sigmoid':
            a_exact, b_exact = platt_exact(scores, yc)
            calibrators.append({'class': col, 'sklearn': {'a': -float(c.a_), 'b': -float(c.b_)},
                                'exact': {'a': a_exact, 'b': b_exact}})
        else:
            calibrators.append({'class': col, 'x': fl(c.X_thresholds_), 'y': fl(c.y_thresholds_)})
    # Query rows for predict_proba: appended to the frozen model's rows (indices past the fit rows).
    est.P = np.vstack([P, query_P])
    proba = cal.predict_proba(np.arange(len(P), len(P) + len(query_P))[:, None])
    return {
        'name': name,
        'note': note,
        'method': 'platt' if method == 'sigmoid' else 'isotonic',
        'input': score_input,
        'nClasses': k,
        'labels': [int(v) for v in y],
        'proba': fl(P),
        'queryProba': fl(query_P),
        'expected': {'calibrators': calibrators, 'proba': fl(proba)},
    }


def isotonic_case(name, note, x, y, query, y_min=None, y_max=None):
    """IsotonicRegression(out_of_bounds='clip') directly, with the optional y_min/y_max bounds."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    ir = IsotonicRegression(out_of_bounds='clip', y_min=y_min, y_max=y_max).fit(x, y)
    q = queries_for(query, np.concatenate([ir.X_thresholds_, [x.min() - 1, x.max() + 1]]))
    return {
        'name': name,
        'note': note,
        'scores': fl(x),
        'labels': [int(v) for v in y],
        'yMin': y_min,
        'yMax': y_max,
        'query': fl(q),
        'expected': {'x': fl(ir.X_thresholds_), 'y': fl(ir.y_thresholds_), 'predict': fl(ir.predict(q))},
    }


def platt_raw_case(name, note, s, y, query):
    """_sigmoid_calibration on raw scores (a decision function of any scale)."""
    from sklearn.calibration import _SigmoidCalibration
    s = np.asarray(s, dtype=float)
    y = np.asarray(y, dtype=int)
    c = _SigmoidCalibration().fit(s, y)
    a_exact, b_exact = platt_exact(s, y)
    q = np.asarray(query, dtype=float)
    return {
        'name': name,
        'note': note,
        'scores': fl(s),
        'labels': [int(v) for v in y],
        'query': fl(q),
        'expected': {'sklearn': {'a': -float(c.a_), 'b': -float(c.b_)}, 'exact': {'a': a_exact, 'b': b_exact},
                     'predictSklearn': fl(c.predict(q)),
                     'predictExact': fl(scipy.special.expit(a_exact * q + b_exact))},
    }


def binary_rows(p):
    p = np.asarray(p, dtype=float)
    return np.column_stack([1 - p, p])


def main():
    classifier_cases = []
    isotonic_cases = []
    platt_cases = []

    # Under-confident binary probabilities: truth logit eta, the model reports sigmoid(0.4 eta + 0.2).
    rng = np.random.default_rng(20261202)
    n = 300
    eta = rng.normal(0, 2.0, n)
    y = (rng.random(n) < scipy.special.expit(eta)).astype(int)
    p = scipy.special.expit(0.4 * eta + 0.2)
    q = np.concatenate([[0.0, 1e-300, 1e-16, 0.01, 0.2, 0.5, 0.77, 0.99, 1 - 1e-16, 1.0], rng.random(20)])
    for method in ('sigmoid', 'isotonic'):
        for score_input in ('probability', 'logit'):
            classifier_cases.append(case(f'binary_underconfident_{method}_{score_input}',
                                         'P(y=1) = expit(eta), eta ~ N(0, 2); p = expit(0.4 eta + 0.2)',
                                         binary_rows(p), y, method, score_input, binary_rows(q)))

    # Heavy ties: probabilities on a 0.05 grid (isotonic pools tied scores first), 0 and 1 included.
    rng = np.random.default_rng(5)
    n = 200
    y = (rng.random(n) < 0.35).astype(int)
    p = np.round(np.clip(0.35 + 0.25 * (y - 0.35) + rng.normal(0, 0.2, n), 0, 1) / 0.05) * 0.05
    p[:3] = [0.0, 1.0, 1.0]
    y[:3] = [1, 0, 1]
    q = np.concatenate([np.unique(p), [0.025, 0.525, 0.975, -0.5, 1.5]])
    for method in ('sigmoid', 'isotonic'):
        classifier_cases.append(case(f'binary_ties_{method}', 'p on a 0.05 grid; confidently wrong 0 and 1',
                                     binary_rows(p), y, method, 'probability', binary_rows(np.clip(q, 0, 1))))
    classifier_cases.append(case('binary_ties_sigmoid_logit', 'the same with logit input: p of 0 and 1 clip to +-34.5',
                                 binary_rows(p), y, 'sigmoid', 'logit', binary_rows(np.clip(q, 0, 1))))

    # Multiclass (3 classes), over-confident softmax: one-vs-rest calibration then renormalisation.
    rng = np.random.default_rng(17)
    n = 240
    y = rng.choice(3, size=n, p=[0.5, 0.3, 0.2])
    logits = rng.normal(0, 1.0, (n, 3)) + 1.2 * np.eye(3)[y]
    P = scipy.special.softmax(2.5 * logits, axis=1)
    Q = scipy.special.softmax(rng.normal(0, 2.0, (25, 3)), axis=1)
    Q = np.vstack([Q, [[1.0, 0.0, 0.0], [0.0, 0.5, 0.5], [1 / 3, 1 / 3, 1 / 3]]])
    for method in ('sigmoid', 'isotonic'):
        classifier_cases.append(case(f'multiclass_overconfident_{method}', 'softmax(2.5 logits), 3 classes',
                                     P, y, method, 'probability', Q))

    # Isotonic alone: PAVA with backtracking, tie handling, near-duplicate scores, bounds.
    x = np.array([0.1, 0.2, 0.3, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.8, 0.8, 0.9, 1.0, 1.1])
    y = np.array([0, 1, 1, 0, 0, 0, 1, 0, 1, 1, 0, 0, 1, 1])
    isotonic_cases.append(isotonic_case('pava_backtracking', 'decreasing runs that pool backwards; tied x',
                                        x, y, np.linspace(0, 1.2, 25)))
    isotonic_cases.append(isotonic_case('pava_bounded', 'the same with y_min=0.2, y_max=0.9 (clipped after PAVA)',
                                        x, y, np.linspace(0, 1.2, 25), y_min=0.2, y_max=0.9))
    x = np.array([0.0, 4e-16, 9e-16, 1.2e-15, 2.5e-15, 3e-15, 0.5, 0.5 + 1e-16, 0.5 + 2e-16, 0.5 + 1e-15, 1.0])
    y = np.array([1, 0, 0, 1, 0, 1, 1, 0, 1, 0, 1])
    isotonic_cases.append(isotonic_case('near_duplicates', 'scores within 1e-15 of a group start pool (_make_unique)',
                                        x, y, [0.25, 0.75, 2e-15]))
    rng = np.random.default_rng(23)
    x = rng.normal(0, 30, 150)
    y = (rng.random(150) < scipy.special.expit(x / 10)).astype(int)
    isotonic_cases.append(isotonic_case('wide_scores', 'decision-function scale scores, N(0, 30)',
                                        x, y, np.linspace(-120, 120, 31)))
    isotonic_cases.append(isotonic_case('one_point', 'every score equal: a constant', np.full(6, 0.3),
                                        np.array([0, 1, 1, 0, 1, 1]), [0.0, 0.3, 1.0]))

    # Platt alone on raw scores: extreme scales.
    rng = np.random.default_rng(29)
    s = rng.normal(0, 1, 120)
    y = (rng.random(120) < scipy.special.expit(3 * s)).astype(int)
    s = np.concatenate([s, [-40.0, 40.0, 35.0, -35.0]])
    y = np.concatenate([y, [0, 1, 0, 1]])
    platt_cases.append(platt_raw_case('raw_extremes', 'N(0,1) scores with four at +-35..40, two of them wrong',
                                      s, y, [-1e3, -40, -1, 0, 1, 40, 1e3]))
    s = rng.normal(500, 200, 150)
    y = (rng.random(150) < scipy.special.expit((s - 450) / 80)).astype(int)
    platt_cases.append(platt_raw_case('raw_large_scale', 'scores around 500 +- 200', s, y, [-1e4, 0, 300, 450, 600, 1e4]))

    # Refused folds: one class only (binary), a class missing from a multiclass fold.
    refuse = [
        {'name': 'binary_all_positive', 'nClasses': 2, 'labels': [1] * 8,
         'proba': fl(binary_rows(np.linspace(0.1, 0.9, 8)))},
        {'name': 'binary_all_negative', 'nClasses': 2, 'labels': [0] * 5,
         'proba': fl(binary_rows(np.linspace(0.1, 0.9, 5)))},
        {'name': 'multiclass_missing_class', 'nClasses': 3, 'labels': [0, 1, 0, 1, 0, 1],
         'proba': fl(np.tile([0.5, 0.3, 0.2], 6))},
    ]

    doc = {
        'generator': 'scripts/golden_calibration.py (run with /usr/bin/python3)',
        'versions': {'sklearn': sklearn.__version__, 'scipy': scipy.__version__, 'numpy': np.__version__},
        'logitEps': LOGIT_EPS,
        'classifierCases': classifier_cases,
        'isotonicCases': isotonic_cases,
        'plattCases': platt_cases,
        'refuse': refuse,
    }
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, 'w') as fh:
        json.dump(doc, fh, allow_nan=False, separators=(',', ':'))
        fh.write('\n')
    # The figures that say how far scikit-learn's BFGS stops from the minimiser.
    worst = 0.0
    for c in classifier_cases:
        for k in c['expected']['calibrators']:
            if 'sklearn' in k:
                worst = max(worst, abs(k['sklearn']['a'] - k['exact']['a']), abs(k['sklearn']['b'] - k['exact']['b']))
    for c in platt_cases:
        e = c['expected']
        worst = max(worst, abs(e['sklearn']['a'] - e['exact']['a']), abs(e['sklearn']['b'] - e['exact']['b']))
    print(f'wrote {os.path.relpath(OUT)}: {len(classifier_cases)} classifier, {len(isotonic_cases)} isotonic, '
          f'{len(platt_cases)} platt, {len(refuse)} refused cases; max |sklearn - exact| Platt parameter {worst:.3g}')


if __name__ == '__main__':
    main()
