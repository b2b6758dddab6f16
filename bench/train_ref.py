#!/usr/bin/python3
"""Reference trainers for bench/train.ts: the same MLP in PyTorch and the same GBDT in XGBoost.

Reads a JSON file {"x": [[...]], "y": [...], "epochs", "batch", "units", "trees", "depth", "lr",
"repeats"} and prints one JSON line of timings. Run by bench/train.ts; needs Debian's
python3-torch and/or python3-xgboost (each part is skipped if its package is missing).
"""
import json
import statistics
import sys
import time

import numpy as np

cfg = json.load(open(sys.argv[1]))
x = np.asarray(cfg["x"], dtype=np.float32)
y = np.asarray(cfg["y"], dtype=np.int64)
out = {}

try:
    import torch

    torch.set_num_threads(int(cfg.get("threads", 2)))
    torch.manual_seed(0)
    layers, d = [], x.shape[1]
    for u in cfg["units"]:
        layers += [torch.nn.Linear(d, u), torch.nn.ReLU()]
        d = u
    layers.append(torch.nn.Linear(d, int(y.max()) + 1))
    model = torch.nn.Sequential(*layers)
    opt = torch.optim.Adam(model.parameters(), lr=0.001)
    loss_fn = torch.nn.CrossEntropyLoss()
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    n, batch = len(x), cfg["batch"]
    times = []
    for epoch in range(cfg["epochs"]):
        t0 = time.perf_counter()
        perm = torch.randperm(n)
        for i in range(0, n, batch):
            idx = perm[i : i + batch]
            opt.zero_grad()
            loss = loss_fn(model(xt[idx]), yt[idx])
            loss.backward()
            opt.step()
        times.append(time.perf_counter() - t0)
    out["torch"] = {"version": torch.__version__, "epoch_seconds_median": statistics.median(times[1:] or times)}
except ImportError:
    out["torch"] = None

try:
    import xgboost

    times = []
    for r in range(cfg["repeats"]):
        t0 = time.perf_counter()
        xgboost.XGBClassifier(n_estimators=cfg["trees"], max_depth=cfg["depth"], learning_rate=cfg["lr"],
                              tree_method="hist", n_jobs=int(cfg.get("threads", 2))).fit(x, y)
        times.append(time.perf_counter() - t0)
    out["xgboost"] = {"version": xgboost.__version__, "seconds_median": statistics.median(times)}
except ImportError:
    out["xgboost"] = None

print(json.dumps(out))
