#!/usr/bin/python3
"""XGBoost reference for bench/train.ts --case gbdt100k: the same boosting on the same table.

Reads a JSON file {"x": path (float32, rows x cols, row-major), "y": path (float32), "rows",
"cols", "train_rows" (the first rows train, the rest are the holdout), "trees", "depth", "lr",
"max_bin", "min_child_weight", "reg_lambda", "threads", "repeats"} and prints one JSON line:
{"version", "seconds": [fit times], "auroc": holdout AUROC}, or null when python3-xgboost (or
scikit-learn, for the AUROC) is not installed.
"""
import json
import sys
import time

import numpy as np

cfg = json.load(open(sys.argv[1]))
try:
    import xgboost
    from sklearn.metrics import roc_auc_score
except ImportError:
    print(json.dumps(None))
    sys.exit(0)

rows, cols, n = cfg["rows"], cfg["cols"], cfg["train_rows"]
x = np.fromfile(cfg["x"], dtype=np.float32).reshape(rows, cols)
y = np.fromfile(cfg["y"], dtype=np.float32).astype(np.int64)
times, auroc = [], None
for _ in range(cfg["repeats"]):
    # XGBoost's defaults otherwise: gamma 0, subsample 1, colsample 1, depth-wise growth.
    model = xgboost.XGBClassifier(
        n_estimators=cfg["trees"],
        max_depth=cfg["depth"],
        learning_rate=cfg["lr"],
        tree_method="hist",
        max_bin=cfg["max_bin"],
        min_child_weight=cfg["min_child_weight"],
        reg_lambda=cfg["reg_lambda"],
        n_jobs=cfg["threads"],
    )
    t0 = time.perf_counter()
    model.fit(x[:n], y[:n])
    times.append(time.perf_counter() - t0)
    auroc = float(roc_auc_score(y[n:], model.predict_proba(x[n:])[:, 1]))
print(json.dumps({"version": xgboost.__version__, "seconds": times, "auroc": auroc}))
