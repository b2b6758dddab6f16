#!/usr/bin/python3
"""Reference values for medfit's window features (src/sequence/features.ts), from numpy.

An independent numpy implementation of the definitions in features.ts (np.percentile,
np.fft.rfft, np.corrcoef), run on seeded random windows: sines in noise, a constant channel,
a length that is not a power of two (zero padding), a band edge hit exactly, an empty lag range.
Regenerate with:  python3 scripts/window_features_golden.py
Writes test/fixtures/golden/window-features.json (inputs, names and expected features).
"""
import json
import math
import numpy as np

SERIES = ["mean", "std", "min", "max", "p10", "p25", "p50", "p75", "p90", "range", "iqr", "rms", "skew",
          "kurt", "mean_abs_diff", "mcr", "ac1", "ac_peak_lag", "ac_peak", "dom_freq", "dom_power",
          "spec_entropy", "spec_centroid", "band_lt0p5", "band_0p5_3", "band_3_8", "band_ge8"]
EDGES = [0.5, 3.0, 8.0]


def series_features(x, rate):
    n = len(x)
    mn, mx = x.min(), x.max()
    const = mn == mx
    mean = mn if const else x.mean()
    d = np.zeros(n) if const else x - mean
    m2, m3, m4 = (d ** 2).mean(), (d ** 3).mean(), (d ** 4).mean()
    p10, p25, p50, p75, p90 = np.percentile(x, [10, 25, 50, 75, 90])
    skew = 0.0 if m2 == 0 else m3 / m2 ** 1.5
    kurt = 0.0 if m2 == 0 else m4 / m2 ** 2 - 3
    mad = np.abs(np.diff(x)).mean() if n > 1 else 0.0
    pos = d >= 0
    mcr = np.count_nonzero(pos[1:] != pos[:-1]) / (n - 1) if n > 1 else 0.0
    ss = (d ** 2).sum()

    def acf(k):
        return (d[:-k] * d[k:]).sum() / ss

    ac1 = acf(1) if ss > 0 and n > 1 else 0.0
    lo = max(1, math.ceil(0.25 * rate))
    hi = min(math.floor(2 * rate), math.floor(0.75 * n))
    peak_lag, peak = 0.0, 0.0
    if ss > 0 and hi >= lo:
        lags = np.arange(lo, hi + 1)
        r = np.array([acf(k) for k in lags])
        j = int(np.argmax(r))
        peak_lag, peak = lags[j] / rate, r[j]

    dom, share, ent, cen, bands = 0.0, 0.0, 0.0, 0.0, [0.0] * 4
    if ss > 0:
        N = 2
        while N < n:
            N *= 2
        M = N // 2
        w = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n) / n)  # periodic Hann
        P = np.abs(np.fft.rfft(d * w, N)) ** 2
        f = np.arange(M + 1) * rate / N
        P1, f1 = P[1:], f[1:]
        total = P1.sum()
        if total > 0:
            k = int(np.argmax(P1))
            dom, share = f1[k], P1[k] / total
            p = P1[P1 > 0] / total
            ent = -(p * np.log(p)).sum() / np.log(M) if M > 1 else 0.0
            cen = (f1 * P1).sum() / total
            band = np.searchsorted(EDGES, f1, side="right")  # f >= edge moves up a band
            bands = [P1[band == b].sum() / total for b in range(4)]
    return [mean, math.sqrt(m2), mn, mx, p10, p25, p50, p75, p90, mx - mn, p75 - p25,
            math.sqrt((x ** 2).mean()), skew, kurt, mad, mcr, ac1, peak_lag, peak, dom, share, ent, cen, *bands]


def triples(names):
    out, used = [], set(names)
    for i, name in enumerate(names):
        if not name or name[-1] not in "xX":
            continue
        pre = name[:-1]
        y, z = (pre + "y", pre + "z") if name[-1] == "x" else (pre + "Y", pre + "Z")
        if y in names and z in names:
            mag = pre + "mag"
            while mag in used:
                mag += "_"
            used.add(mag)
            out.append(((i, names.index(y), names.index(z)), mag))
    return out


def corr(a, b):
    if a.min() == a.max() or b.min() == b.max():
        return 0.0
    return float(np.clip(np.corrcoef(a, b)[0, 1], -1, 1))


def window_features(w, names, rate):
    """w: steps × channels."""
    out = []
    for c in range(w.shape[1]):
        out += series_features(w[:, c], rate)
    tr = triples(names)
    for (i, j, k), _ in tr:
        out += series_features(np.sqrt(w[:, i] ** 2 + w[:, j] ** 2 + w[:, k] ** 2), rate)
    for (i, j, k), _ in tr:
        out += [corr(w[:, i], w[:, j]), corr(w[:, i], w[:, k]), corr(w[:, j], w[:, k])]
    return out


def feature_names(names):
    tr = triples(names)
    out = [f"{s}_{f}" for s in names + [m for _, m in tr] for f in SERIES]
    for (i, j, k), _ in tr:
        a, b, c = names[i], names[j], names[k]
        out += [f"corr_{a}_{b}", f"corr_{a}_{c}", f"corr_{b}_{c}"]
    return out


rng = np.random.RandomState(7)


def windows(rows, steps, names, rate, constant=()):
    t = np.arange(steps) / rate
    out = np.zeros((rows, steps, len(names)))
    for r in range(rows):
        for c in range(len(names)):
            f = rng.uniform(0.3, min(12.0, rate / 2.5))
            out[r, :, c] = (rng.uniform(0.5, 2.0) * np.sin(2 * np.pi * f * t + rng.uniform(0, 6.3))
                            + rng.normal(scale=rng.uniform(0.1, 1.0), size=steps) + rng.normal())
    for r, c, v in constant:
        out[r, :, c] = v
    return out


cases = []
for name, steps, names, rate, rows, constant in [
    ("wearable-128x7", 128, ["ax", "ay", "az", "gx", "gy", "gz", "hr"], 50.0, 4, [(2, 6, 72.0), (3, 3, 0.1)]),
    ("padded-100x4", 100, ["accel_x", "accel_y", "accel_z", "temp"], 32.0, 3, [(1, 1, 0.0)]),
    ("odd-37x2", 37, ["x", "y"], 10.0, 2, []),
    ("band-edge-16x4", 16, ["AX", "AY", "AZ", "Amag"], 64.0, 2, []),
]:
    w = windows(rows, steps, names, rate, constant)
    cases.append({
        "name": name,
        "shape": {"steps": steps, "channels": len(names), "rate": rate, "channelNames": names},
        "x": w.reshape(-1).tolist(),
        "names": feature_names(names),
        "features": [float(v) for r in range(rows) for v in window_features(w[r], names, rate)],
    })

json.dump({"cases": cases}, open("test/fixtures/golden/window-features.json", "w"))
print("wrote test/fixtures/golden/window-features.json")
