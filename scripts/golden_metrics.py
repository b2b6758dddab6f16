#!/usr/bin/env python3
"""Golden values for medfit's src/eval, computed with scikit-learn, SciPy and NumPy.

Regenerate (deterministic; needs Debian's python3-sklearn 1.2.x, python3-scipy, python3-numpy):

    /usr/bin/python3 scripts/golden_metrics.py

It rewrites test/fixtures/golden/metrics.json with every input (labels, probabilities or
predictions) and every expected value, so the TypeScript tests run offline without Python.
src/eval/golden.test.ts reads that file. Inputs are stored as written, so a different NumPy or
scikit-learn only matters when regenerating.

Where scikit-learn 1.2 has no function for a medfit metric, the reference is written out here in
NumPy/SciPy, independently of the TypeScript code, so the two implementations check each other:
  - DeLong's AUROC variance: the O(n^2) placement-value definition (DeLong, DeLong &
    Clarke-Pearson 1988); medfit uses the O(n log n) midrank algorithm (Sun & Xu 2014).
  - calibration slope: a NumPy Newton-Raphson fit of y on logit(p), run to machine precision
    (stored in metrics); sklearn's unpenalised LogisticRegression (newton-cg) is stored beside it as
    calibrationSlopeSklearn: it stops at a gradient tolerance, so it agrees only to ~1e-9.
  - calibration intercept (calibration-in-the-large, slope fixed at 1 via an offset): the root
    of the score equation sum(y - expit(a + logit(p))) = 0 by scipy.optimize.brentq.
  - specificity (multiclass: macro over one-vs-rest), multiclass Brier (mean over rows of the
    squared distance to the one-hot label), multiclass AUPRC (macro over one-vs-rest AP),
    multiclass calibration (mean over classes of the one-vs-rest values).
"""

import json
import os
import warnings

import numpy as np
import scipy
import scipy.optimize
import scipy.special
import scipy.stats
import sklearn
from sklearn import metrics as M
from sklearn.datasets import load_breast_cancer, load_diabetes, make_classification
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'test', 'fixtures', 'golden', 'metrics.json')
CAL_EPS = 1e-15  # medfit clips p to [1e-15, 1 - 1e-15] before logit for calibration
Z975 = float(scipy.stats.norm.ppf(0.975))


def logit_clipped(p):
    p = np.clip(np.asarray(p, dtype=float), CAL_EPS, 1 - CAL_EPS)
    return np.log(p / (1 - p))


def calibration_slope(y, p):
    x = logit_clipped(p).reshape(-1, 1)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        lr = LogisticRegression(penalty='none', solver='newton-cg', tol=1e-10, max_iter=1000)
        lr.fit(x, y)
    slope = float(lr.coef_[0, 0])
    # Cross-check with a plain NumPy Newton-Raphson on (intercept, slope).
    X = np.column_stack([np.ones(len(y)), x[:, 0]])
    loglik = lambda b: float(np.sum(y * (X @ b) - np.logaddexp(0, X @ b)))
    beta = np.array([0.0, 1.0])
    for _ in range(200):
        mu = scipy.special.expit(X @ beta)
        g = X.T @ (y - mu)
        H = (X * (mu * (1 - mu))[:, None]).T @ X
        step = np.linalg.solve(H, g)
        t = 1.0  # halve the step until the likelihood does not fall (confident outliers overshoot)
        while loglik(beta + t * step) < loglik(beta) - 1e-12 * abs(loglik(beta)) and t > 1e-18:
            t /= 2
        beta = beta + t * step
        if t == 1.0 and np.max(np.abs(step)) < 1e-13:
            break
    assert abs(beta[1] - slope) < 1e-6 * max(1, abs(slope)), (beta, slope)
    return float(beta[1]), slope


def calibration_intercept(y, p):
    x = logit_clipped(p)
    f = lambda a: float(np.sum(y - scipy.special.expit(a + x)))
    lo, hi = -1.0, 1.0
    while f(lo) < 0:
        lo *= 2
    while f(hi) > 0:
        hi *= 2
    return float(scipy.optimize.brentq(f, lo, hi, xtol=1e-15, rtol=4 * np.finfo(float).eps, maxiter=500))


def delong_ci(y, s):
    """AUROC 95% CI from DeLong's variance, O(n^2) placement values, clipped to [0, 1]."""
    X = s[y == 1]
    Y = s[y == 0]
    m, n = len(X), len(Y)
    psi = (X[:, None] > Y[None, :]).astype(float) + 0.5 * (X[:, None] == Y[None, :])
    v10 = psi.mean(axis=1)
    v01 = psi.mean(axis=0)
    auc = v10.mean()
    var = np.var(v10, ddof=1) / m + np.var(v01, ddof=1) / n
    half = Z975 * np.sqrt(var)
    assert abs(auc - M.roc_auc_score(y, s)) < 1e-12
    return {'lower': float(max(0.0, auc - half)), 'upper': float(min(1.0, auc + half))}


def fl(a):
    return [float(v) for v in a]


def curves(y, s):
    fpr, tpr, thr = M.roc_curve(y, s)
    prec, rec, pthr = M.precision_recall_curve(y, s)
    return (
        {'fpr': fl(fpr), 'tpr': fl(tpr), 'thresholds': fl(thr)},
        {'precision': fl(prec), 'recall': fl(rec), 'thresholds': fl(pthr)},
    )


def binary_case(name, y, proba, threshold, note):
    y = np.asarray(y, dtype=int)
    proba = np.asarray(proba, dtype=float)
    p1 = proba[:, 1]
    pred = (p1 >= threshold).astype(int)
    slope, slope_sklearn = calibration_slope(y, p1)
    roc, pr = curves(y, p1)
    metrics = {
        'auroc': M.roc_auc_score(y, p1),
        'auprc': M.average_precision_score(y, p1),
        'accuracy': M.accuracy_score(y, pred),
        'balanced_accuracy': M.balanced_accuracy_score(y, pred),
        'precision': M.precision_score(y, pred, zero_division=0),
        'recall': M.recall_score(y, pred, zero_division=0),
        'specificity': M.recall_score(y, pred, pos_label=0, zero_division=0),
        'f1': M.f1_score(y, pred, zero_division=0),
        # sklearn 1.2's default eps='auto' is float64 machine epsilon (2.22e-16), not 1e-15.
        'log_loss': M.log_loss(y, p1),
        'brier': M.brier_score_loss(y, p1),
        'calibration_slope': slope,
        'calibration_intercept': calibration_intercept(y, p1),
    }
    return {
        'name': name,
        'note': note,
        'task': 'binary',
        'k': 2,
        'threshold': threshold,
        'yTrue': [int(v) for v in y],
        'proba': fl(proba.ravel()),
        'expected': {
            'metrics': {k: float(v) for k, v in metrics.items()},
            'calibrationSlopeSklearn': slope_sklearn,
            'aurocCi': delong_ci(y, p1),
            'confusion': M.confusion_matrix(y, pred, labels=[0, 1]).tolist(),
            'roc': roc,
            'pr': pr,
        },
    }


def multiclass_case(name, y, P, note):
    y = np.asarray(y, dtype=int)
    P = np.asarray(P, dtype=float)
    n, k = P.shape
    pred = np.argmax(P, axis=1)  # first maximum on ties, as medfit
    onehot = np.eye(k)[y]
    present = np.unique(np.concatenate([y, pred]))  # sklearn's default label set for averages
    mcm = M.multilabel_confusion_matrix(y, pred, labels=present)
    spec = [tn / (tn + fp) if tn + fp > 0 else 0.0 for (tn, fp), _ in mcm]
    per_auc, per_ap, slopes, slopes_sklearn, intercepts, cis = [], [], [], [], [], []
    for c in range(k):
        yc = (y == c).astype(int)
        per_auc.append(M.roc_auc_score(yc, P[:, c]))
        per_ap.append(M.average_precision_score(yc, P[:, c]))
        newton, skl = calibration_slope(yc, P[:, c])
        slopes.append(newton)
        slopes_sklearn.append(skl)
        intercepts.append(calibration_intercept(yc, P[:, c]))
        cis.append(delong_ci(yc, P[:, c]))
    rows_sum_to_one = bool(np.allclose(P.sum(axis=1), 1.0))
    if rows_sum_to_one:
        auroc = M.roc_auc_score(y, P, multi_class='ovr', average='macro')
        auroc_w = M.roc_auc_score(y, P, multi_class='ovr', average='weighted')
        assert abs(auroc - np.mean(per_auc)) < 1e-12
    else:
        # roc_auc_score refuses rows that do not sum to 1; its OvR macro is this mean.
        auroc = float(np.mean(per_auc))
        auroc_w = float(np.average(per_auc, weights=np.bincount(y, minlength=k)))
    p, r, f, s = M.precision_recall_fscore_support(y, pred, labels=list(range(k)), zero_division=0)
    macro = M.precision_recall_fscore_support(y, pred, average='macro', zero_division=0)
    weighted = M.precision_recall_fscore_support(y, pred, average='weighted', zero_division=0)
    metrics = {
        'auroc': auroc,
        'auprc': float(np.mean(per_ap)),
        'accuracy': M.accuracy_score(y, pred),
        'balanced_accuracy': M.balanced_accuracy_score(y, pred),
        'precision': macro[0],
        'recall': macro[1],
        'specificity': float(np.mean(spec)),
        'f1': macro[2],
        'log_loss': M.log_loss(y, P, labels=list(range(k))),
        'brier': float(np.mean(np.sum((P - onehot) ** 2, axis=1))),
        'calibration_slope': float(np.mean(slopes)),
        'calibration_intercept': float(np.mean(intercepts)),
    }
    roc, pr = curves(onehot.ravel().astype(int), P.ravel())  # micro-average curves
    return {
        'name': name,
        'note': note,
        'task': 'multiclass',
        'k': k,
        'threshold': None,
        'yTrue': [int(v) for v in y],
        'proba': fl(P.ravel()),
        'expected': {
            'metrics': {kk: float(v) for kk, v in metrics.items()},
            'calibrationSlopeSklearn': float(np.mean(slopes_sklearn)),
            'aurocCi': {
                'lower': float(np.mean([c['lower'] for c in cis])),
                'upper': float(np.mean([c['upper'] for c in cis])),
            },
            'confusion': M.confusion_matrix(y, pred, labels=list(range(k))).tolist(),
            'roc': roc,
            'pr': pr,
            'perClass': [
                {'label': c, 'precision': float(p[c]), 'recall': float(r[c]), 'f1': float(f[c]),
                 'support': int(s[c]), 'auroc': float(per_auc[c])}
                for c in range(k)
            ],
            'averages': {
                'macro': {'precision': float(macro[0]), 'recall': float(macro[1]), 'f1': float(macro[2]),
                          'auroc': float(auroc)},
                'weighted': {'precision': float(weighted[0]), 'recall': float(weighted[1]),
                             'f1': float(weighted[2]), 'auroc': float(auroc_w)},
            },
        },
    }


def regression_case(name, y, yhat, note):
    y = np.asarray(y, dtype=float)
    yhat = np.asarray(yhat, dtype=float)
    e = yhat - y
    metrics = {
        'mse': M.mean_squared_error(y, yhat),
        'rmse': M.mean_squared_error(y, yhat, squared=False),
        'mae': M.mean_absolute_error(y, yhat),
        'r2': M.r2_score(y, yhat),
        'pearson_r': scipy.stats.pearsonr(y, yhat)[0],
        'bias': float(np.mean(e)),
        'error_std': float(np.std(e, ddof=0)),  # population std, as medfit documents
    }
    return {
        'name': name,
        'note': note,
        'task': 'regression',
        'yTrue': fl(y),
        'yPred': fl(yhat),
        'expected': {'metrics': {k: float(v) for k, v in metrics.items()}},
    }


def main():
    cases = []

    # Binary with heavy ties: scores on a 0.1 grid, including exactly 0.5 (tests p >= threshold).
    rng = np.random.default_rng(20240501)
    n = 300
    y = (rng.random(n) < 0.4).astype(int)
    s = np.round(np.clip(0.45 + 0.2 * y + rng.normal(0, 0.2, n), 0, 1), 1)
    # Confidently wrong rows at p = 0 and p = 1: log_loss then depends on the clipping eps.
    y[:2], s[:2] = [0, 1], [1.0, 0.0]
    assert np.any(s == 0.5)
    cases.append(binary_case('binary_ties', y, np.column_stack([1 - s, s]), 0.5,
                             'scores on a 0.1 grid: tied thresholds, p exactly at the threshold, confidently wrong p of 0 and 1'))

    # Binary, imbalanced (about 4% positives), miscalibrated logistic scores, threshold 0.2.
    rng = np.random.default_rng(7)
    n = 1500
    x = rng.normal(0, 1, n)
    y = (rng.random(n) < scipy.special.expit(-3.6 + 1.5 * x)).astype(int)
    s = scipy.special.expit(-2.5 + 2.2 * x + rng.normal(0, 0.5, n))
    cases.append(binary_case('binary_imbalanced', y, np.column_stack([1 - s, s]), 0.2,
                             'about 4% positives, over-confident scores, threshold 0.2'))

    # Binary from a real model: L2 logistic regression on the breast cancer data, fixed split.
    data = load_breast_cancer()
    Xtr, Xte, ytr, yte = train_test_split(data.data, data.target, test_size=0.25, random_state=0,
                                          stratify=data.target)
    sc = StandardScaler().fit(Xtr)
    lr = LogisticRegression(C=0.05, max_iter=10000).fit(sc.transform(Xtr), ytr)
    P = lr.predict_proba(sc.transform(Xte))
    assert M.roc_auc_score(yte, P[:, 1]) < 1.0  # not separable, so the calibration fit has an MLE
    cases.append(binary_case('binary_breast_cancer', yte, P, 0.5,
                             'sklearn LogisticRegression(C=0.05) on load_breast_cancer, '
                             'train_test_split(test_size=0.25, random_state=0, stratify)'))

    # Binary where column 0 is not 1 - column 1: medfit reads only column 1 for binary metrics.
    rng = np.random.default_rng(11)
    n = 60
    y = (rng.random(n) < 0.5).astype(int)
    s = np.clip(0.5 + 0.3 * (y - 0.5) + rng.normal(0, 0.25, n), 0.01, 0.99)
    cases.append(binary_case('binary_rows_not_normalised', y, np.column_stack([rng.random(n), s]), 0.5,
                             'column 0 is noise; every binary metric uses column 1 only'))

    # Multiclass from a real model: multinomial logistic regression on make_classification.
    X, y = make_classification(n_samples=600, n_features=6, n_informative=4, n_redundant=0, n_classes=3,
                               n_clusters_per_class=1, flip_y=0.1, class_sep=0.8, random_state=7)
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.25, random_state=0, stratify=y)
    lr = LogisticRegression(max_iter=10000).fit(Xtr, ytr)
    cases.append(multiclass_case('multiclass_logreg', yte, lr.predict_proba(Xte),
                                 'sklearn LogisticRegression (multinomial) on make_classification(random_state=7)'))

    # Multiclass, 4 classes, probabilities rounded to 0.01 (ties, rows not summing to 1); class 3 is
    # rare and never the argmax (zero_division=0 for its precision).
    rng = np.random.default_rng(3)
    n = 240
    y = rng.choice(4, size=n, p=[0.4, 0.3, 0.22, 0.08])
    logits = rng.normal(0, 1.0, (n, 4)) + 1.4 * np.eye(4)[y]
    logits[:, 3] -= 2.5
    P = np.round(scipy.special.softmax(logits, axis=1), 2)
    assert not np.any(np.argmax(P, axis=1) == 3)
    cases.append(multiclass_case('multiclass_rounded_4', y, P,
                                 'rounded probabilities: ties, rows off 1 by up to ~0.02, class 3 never predicted'))

    # Regression, synthetic: biased, shrunk predictions.
    rng = np.random.default_rng(5)
    n = 500
    y = rng.normal(70, 12, n)
    yhat = 0.8 * y + 14 + 0.3 + rng.normal(0, 6, n)
    cases.append(regression_case('regression_synthetic', y, yhat, 'shrunk, biased predictions'))

    # Regression from a real model: least squares on the diabetes data, fixed split.
    X, y = load_diabetes(return_X_y=True)
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.25, random_state=0)
    yhat = LinearRegression().fit(Xtr, ytr).predict(Xte)
    cases.append(regression_case('regression_diabetes', yte, yhat,
                                 'sklearn LinearRegression on load_diabetes, train_test_split(test_size=0.25, random_state=0)'))

    doc = {
        'generator': 'scripts/golden_metrics.py (run with /usr/bin/python3)',
        'versions': {'sklearn': sklearn.__version__, 'scipy': scipy.__version__, 'numpy': np.__version__},
        'z975': Z975,
        'cases': cases,
    }
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, 'w') as fh:
        json.dump(doc, fh, allow_nan=False, separators=(',', ':'))
        fh.write('\n')
    print(f'wrote {os.path.relpath(OUT)}: {len(cases)} cases')


if __name__ == '__main__':
    main()
