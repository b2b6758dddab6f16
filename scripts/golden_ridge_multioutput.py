#!/usr/bin/python3
"""Reference coefficients for medfit's multi-output ridge (`linear` with several targets), from scikit-learn.

Regenerate with Debian's python3-sklearn:  /usr/bin/python3 scripts/golden_ridge_multioutput.py
Reads test/fixtures/linnerud_fitness.csv (chins, situps, jumps -> weight, waist, pulse), standardizes
the three features as medfit's pipeline does (StandardScaler: mean, population std), fits Ridge on
the three targets at once, and writes test/fixtures/golden/ridge-multioutput.json.
"""
import csv
import json

import numpy as np
from sklearn.linear_model import Ridge
from sklearn.preprocessing import StandardScaler

FEATURES = ["chins", "situps", "jumps"]
TARGETS = ["weight", "waist", "pulse"]

with open("test/fixtures/linnerud_fitness.csv", newline="") as f:
    rows = list(csv.DictReader(f))
X = np.array([[float(r[c]) for c in FEATURES] for r in rows])
Y = np.array([[float(r[c]) for c in TARGETS] for r in rows])
Xs = StandardScaler().fit_transform(X)

out = {"features": FEATURES, "targets": TARGETS, "X": Xs.tolist(), "Y": Y.tolist(), "ridge": {}}
for alpha in (1.0, 10.0):
    m = Ridge(alpha=alpha, solver="cholesky").fit(Xs, Y)
    # coef_ is (n_targets, n_features): medfit's LinearWeights.coef layout, row-major.
    out["ridge"][str(alpha)] = {
        "coef": m.coef_.ravel().tolist(),
        "intercept": m.intercept_.tolist(),
        "pred": m.predict(Xs).ravel().tolist(),
    }
with open("test/fixtures/golden/ridge-multioutput.json", "w") as f:
    json.dump(out, f)
print("wrote test/fixtures/golden/ridge-multioutput.json")
