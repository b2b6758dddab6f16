#!/usr/bin/env python3
"""How learnable is `medfit synth fitness`? A reference check, not part of the test suite.

Cuts each session of the CSV into 2.56 s windows (128 samples at 50 Hz) with 50% overlap, computes
simple window features (per channel mean, std, min, max and percentiles; the acceleration and
rotation magnitudes; the spectral peak of each accelerometer axis and of the magnitude), and
scores HistGradientBoosting with leave-subjects-out cross-validation (GroupKFold by subject):
accuracy on `activity` and R² on the window's mean `energy`. The generator is tuned so that these
land near 0.92-0.98 and 0.85-0.95: learnable, but not trivially.

Windows that straddle two activity bouts are left out (they have no single label), as the usual
HAR benchmarks do; --mixed keeps them with their majority label.

Usage (numpy and scikit-learn; Debian: apt-get install python3-sklearn):
    medfit synth fitness --subjects 24 --seed 0 --out /tmp/fitness.csv
    /usr/bin/python3 scripts/check_synth.py /tmp/fitness.csv [--mixed] [--folds 6]
"""
import argparse
import csv
import sys

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.metrics import accuracy_score, confusion_matrix, r2_score
from sklearn.model_selection import GroupKFold

WINDOW = 128
STEP = 64
CHANNELS = ["ax", "ay", "az", "gx", "gy", "gz", "hr"]


def read(path):
    with open(path, newline="") as f:
        r = csv.reader(f)
        header = next(r)
        rows = list(r)
    col = {name: i for i, name in enumerate(header)}
    subject = np.array([row[col["subject"]] for row in rows])
    session = np.array([row[col["session"]] for row in rows])
    t = np.array([int(row[col["t"]]) for row in rows], dtype=np.int64)
    x = np.array([[float(row[col[c]]) for c in CHANNELS] for row in rows])
    activity = np.array([row[col["activity"]] for row in rows])
    energy = np.array([float(row[col["energy"]]) for row in rows])
    return subject, session, t, x, activity, energy


def features(w, rate):
    acc = w[:, 0:3]
    gyr = w[:, 3:6]
    amag = np.linalg.norm(acc, axis=1)
    gmag = np.linalg.norm(gyr, axis=1)
    chans = np.column_stack([w, amag, gmag])
    f = [
        chans.mean(0),
        chans.std(0),
        chans.min(0),
        chans.max(0),
        np.percentile(chans, [10, 25, 50, 75, 90], axis=0).ravel(),
    ]
    # Spectral peak (frequency and share of power) of each accelerometer axis and the magnitude.
    spec_in = np.column_stack([acc, amag, gmag])
    spec = np.abs(np.fft.rfft(spec_in - spec_in.mean(0), axis=0)) ** 2
    freqs = np.fft.rfftfreq(len(w), 1 / rate)
    spec[0] = 0
    peak = spec.argmax(0)
    total = spec.sum(0) + 1e-12
    f.append(freqs[peak])
    f.append(spec[peak, np.arange(spec.shape[1])] / total)
    return np.concatenate(f)


def windows(subject, session, t, x, activity, energy, mixed):
    feats, labels, targets, groups = [], [], [], []
    dropped = 0
    starts = np.flatnonzero(np.r_[True, session[1:] != session[:-1]])
    ends = np.r_[starts[1:], len(session)]
    for a, b in zip(starts, ends):
        rate = 1000.0 / np.median(np.diff(t[a:b]))
        for s in range(a, b - WINDOW + 1, STEP):
            acts = activity[s : s + WINDOW]
            if acts[0] != acts[-1] and not mixed:
                dropped += 1
                continue
            values, counts = np.unique(acts, return_counts=True)
            feats.append(features(x[s : s + WINDOW], rate))
            labels.append(values[counts.argmax()])
            targets.append(energy[s : s + WINDOW].mean())
            groups.append(subject[s])
    return np.array(feats), np.array(labels), np.array(targets), np.array(groups), dropped


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("csv")
    p.add_argument("--folds", type=int, default=6)
    p.add_argument("--mixed", action="store_true", help="keep windows across two bouts (majority label)")
    args = p.parse_args()
    subject, session, t, x, activity, energy = read(args.csv)
    X, y, e, g, dropped = windows(subject, session, t, x, activity, energy, args.mixed)
    print(f"{len(np.unique(g))} subjects, {len(X)} windows of {WINDOW} samples ({dropped} across two bouts left out), {X.shape[1]} features")

    cv = GroupKFold(n_splits=args.folds)
    pred = np.empty(len(y), dtype=y.dtype)
    epred = np.empty(len(e))
    fold_acc, fold_r2 = [], []
    for train, test in cv.split(X, y, g):
        clf = HistGradientBoostingClassifier(random_state=0).fit(X[train], y[train])
        pred[test] = clf.predict(X[test])
        fold_acc.append(accuracy_score(y[test], pred[test]))
        reg = HistGradientBoostingRegressor(random_state=0).fit(X[train], e[train])
        epred[test] = reg.predict(X[test])
        fold_r2.append(r2_score(e[test], epred[test]))

    labels = sorted(np.unique(y))
    print(f"activity accuracy (GroupKFold {args.folds}, by subject): {accuracy_score(y, pred):.3f} "
          f"(folds {min(fold_acc):.3f}-{max(fold_acc):.3f})")
    cm = confusion_matrix(y, pred, labels=labels)
    print("confusion (rows true, columns predicted):")
    print("          " + " ".join(f"{l[:8]:>8}" for l in labels))
    for l, row in zip(labels, cm):
        print(f"{l[:9]:>9} " + " ".join(f"{v:8d}" for v in row))
    print(f"energy R² (window mean, GroupKFold {args.folds}): {r2_score(e, epred):.3f} "
          f"(folds {min(fold_r2):.3f}-{max(fold_r2):.3f}); energy range {e.min():.2f}-{e.max():.2f} kcal/min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
