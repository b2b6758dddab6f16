#!/usr/bin/python3
"""Reference coefficients for medfit's linear family, from scikit-learn.

Regenerate with Debian's python3-sklearn:  /usr/bin/python3 scripts/golden_linear.py
Writes test/fixtures/golden/linear.json (inputs and expected outputs).
"""
import json
import numpy as np
from sklearn.linear_model import LogisticRegression, Ridge

rng = np.random.RandomState(0)
X = rng.normal(size=(120, 4))
w = np.array([1.5, -2.0, 0.5, 0.0])
yb = (X @ w + 0.3 + rng.normal(scale=1.0, size=120) > 0).astype(int)
ym = np.argmax(X[:, :3] + rng.normal(scale=0.7, size=(120, 3)), axis=1)
yr = X @ np.array([3.0, -1.0, 0.0, 2.0]) + 5 + rng.normal(scale=0.5, size=120)

out = {"X": X.tolist(), "binary": {}, "multiclass": {}, "ridge": {}}
for C in (1.0, 0.1):
    m = LogisticRegression(C=C, tol=1e-10, max_iter=10000).fit(X, yb)
    out["binary"][str(C)] = {"y": yb.tolist(), "coef": m.coef_.ravel().tolist(), "intercept": m.intercept_.tolist(),
                            "proba": m.predict_proba(X)[:, 1].tolist()}
    m = LogisticRegression(C=C, tol=1e-10, max_iter=10000).fit(X, ym)
    out["multiclass"][str(C)] = {"y": ym.tolist(), "proba": m.predict_proba(X).ravel().tolist()}
m = LogisticRegression(C=1.0, tol=1e-10, max_iter=10000, class_weight="balanced").fit(X, yb)
out["binary"]["balanced"] = {"y": yb.tolist(), "coef": m.coef_.ravel().tolist(), "intercept": m.intercept_.tolist(),
                             "proba": m.predict_proba(X)[:, 1].tolist()}
for alpha in (1.0, 10.0):
    m = Ridge(alpha=alpha).fit(X, yr)
    out["ridge"][str(alpha)] = {"y": yr.tolist(), "coef": m.coef_.tolist(), "intercept": float(m.intercept_),
                               "pred": m.predict(X).tolist()}
json.dump(out, open("test/fixtures/golden/linear.json", "w"))
print("wrote test/fixtures/golden/linear.json")
