"""A small cost model: gradient-boosted regression trees on NumPy.

Why not a library: XGBoost (AutoTVM's choice) and LightGBM are 100+ MB wheels with native
code, scikit-learn pulls in SciPy (~40 MB). The data here is tiny — tens to a few hundred
measured configs, ~50 features — so a depth-3 boosted tree ensemble written with vectorised
NumPy fits in well under 100 ms and predicts thousands of candidates in a few ms. Trees suit
the problem: the speed of a schedule has thresholds (registers spill past 16 vectors, a
working set stops fitting L1) and interactions (vectorizing only helps with a contiguous inner
dimension), which linear models miss.

Each split is chosen exactly: for every feature at once, the samples are sorted and the
squared-error gain of every threshold is computed from cumulative sums.
"""
from __future__ import annotations

import numpy as np


class _Tree:
    """Arrays of nodes; a leaf has ``feature == -1`` and points to itself."""

    def __init__(self, max_depth):
        self.max_depth = max_depth
        self.feature, self.threshold, self.left, self.right, self.value = [], [], [], [], []

    def _node(self, value):
        self.feature.append(-1)
        self.threshold.append(0.0)
        self.left.append(len(self.feature) - 1)
        self.right.append(len(self.feature) - 1)
        self.value.append(float(value))
        return len(self.feature) - 1

    def fit(self, X, r, idx, min_leaf, features):
        root = self._node(r[idx].mean())
        stack = [(root, idx, 0)]
        while stack:
            node, rows, depth = stack.pop()
            if depth >= self.max_depth or len(rows) < 2 * min_leaf:
                continue
            best = _best_split(X[np.ix_(rows, features)], r[rows], min_leaf)
            if best is None:
                continue
            j, thr = features[best[0]], best[1]
            go_left = X[rows, j] <= thr
            lrows, rrows = rows[go_left], rows[~go_left]
            left, right = self._node(r[lrows].mean()), self._node(r[rrows].mean())
            self.feature[node], self.threshold[node] = j, thr
            self.left[node], self.right[node] = left, right
            stack += [(left, lrows, depth + 1), (right, rrows, depth + 1)]
        self.feature = np.asarray(self.feature)
        self.threshold = np.asarray(self.threshold)
        self.left, self.right = np.asarray(self.left), np.asarray(self.right)
        self.value = np.asarray(self.value)
        return self

    def predict(self, X):
        node = np.zeros(len(X), dtype=np.int64)
        rows = np.arange(len(X))
        for _ in range(self.max_depth):
            f = self.feature[node]
            split = f >= 0
            if not split.any():
                break
            x = X[rows, np.where(split, f, 0)]
            node = np.where(split, np.where(x <= self.threshold[node], self.left[node], self.right[node]), node)
        return self.value[node]


def _best_split(Xn, r, min_leaf):
    """(feature column, threshold) with the largest squared-error gain, or None."""
    n = len(r)
    order = np.argsort(Xn, axis=0, kind="stable")
    xs = np.take_along_axis(Xn, order, axis=0)
    cs = np.cumsum(r[order], axis=0)[:-1]
    total = r.sum()
    nl = np.arange(1, n)[:, None].astype(np.float64)
    gain = cs ** 2 / nl + (total - cs) ** 2 / (n - nl) - total ** 2 / n
    valid = (xs[1:] > xs[:-1]) & (nl >= min_leaf) & (n - nl >= min_leaf)
    if not valid.any():
        return None
    gain = np.where(valid, gain, -np.inf)
    k, j = np.unravel_index(int(np.argmax(gain)), gain.shape)
    if gain[k, j] <= 1e-12:
        return None
    return int(j), float((xs[k, j] + xs[k + 1, j]) / 2)


class GBTModel:
    """Gradient-boosted regression trees (squared error), with row and feature subsampling."""

    def __init__(self, n_trees=80, max_depth=3, learning_rate=0.15, min_leaf=2, subsample=0.8,
                 colsample=0.8, seed=0):
        self.n_trees, self.max_depth, self.learning_rate = n_trees, max_depth, learning_rate
        self.min_leaf, self.subsample, self.colsample = min_leaf, subsample, colsample
        self.rng = np.random.default_rng(seed)
        self.trees = []
        self.base = 0.0

    def fit(self, X, y):
        X = np.asarray(X, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        n, d = X.shape
        self.base = float(y.mean()) if n else 0.0
        self.trees = []
        pred = np.full(n, self.base)
        if n < 2:
            return self
        for _ in range(self.n_trees):
            r = y - pred
            rows = np.sort(self.rng.choice(n, max(2, int(self.subsample * n)), replace=False))
            cols = np.sort(self.rng.choice(d, max(1, int(self.colsample * d)), replace=False))
            tree = _Tree(self.max_depth).fit(X, r, rows, self.min_leaf, cols)
            self.trees.append(tree)
            pred += self.learning_rate * tree.predict(X)
        return self

    def predict(self, X):
        X = np.asarray(X, dtype=np.float64)
        out = np.full(len(X), self.base)
        for tree in self.trees:
            out += self.learning_rate * tree.predict(X)
        return out
