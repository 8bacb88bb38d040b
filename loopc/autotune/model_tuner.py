"""A tuner guided by a learned cost model (AutoTVM's XGBTuner, with loopc's own model).

1. The first ``n_init`` configs are the template's default (config 0: each knob's first
   choice, which templates make their untuned schedule) and random ones.
2. Then, each round: fit the model (features -> GFLOP/s relative to the best so far) on
   everything measured; build a candidate pool — every one-knob change of the best measured
   configs, random two-knob changes, and random configs; predict; take the best predicted,
   look once more around them (their one-knob neighbours); plan the top ``plan_size`` — no
   two of them one knob apart — of which a fraction ``epsilon`` is random pool members
   (exploration) and one flips a small knob (an on/off switch, an order) of the best config
   so far (see ``_sweep``).
3. Measure the plan in batches, repeat.

Features come from the schedule the template builds for a config (features.py), which the
tuner computes in its own process and caches.
"""
from __future__ import annotations

import numpy as np

from .cost_model import GBTModel
from .features import config_features
from .tuner import Tuner


class ModelTuner(Tuner):
    def __init__(self, task, plan_size=8, n_init=None, pool_size=128, epsilon=0.1, top_k=6, model=None,
                 seed=None):
        super().__init__(task, seed)
        self.plan_size = max(1, int(plan_size))
        self.n_init = int(n_init) if n_init is not None else max(self.plan_size, 8)
        self.pool_size = int(pool_size)
        self.epsilon = float(epsilon)
        self.top_k = int(top_k)
        self.model = model if model is not None else GBTModel(seed=0 if seed is None else int(seed))
        self._features = {}
        self._plan = []
        self.model_seconds = 0.0

    def features(self, index):
        if index not in self._features:
            self._features[index] = config_features(self.task, self.space.get(index))
        return self._features[index]

    def _neighbours(self, index, per_knob=6):
        genes = self.space.knob_indices(index)
        out = []
        for k, d in enumerate(self.space.dims):
            if d <= 1:
                continue
            choices = range(d) if d <= per_knob + 1 else self.rng.choice(d, per_knob, replace=False)
            for c in choices:
                if c != genes[k]:
                    g = list(genes)
                    g[k] = int(c)
                    out.append(self.space.index_from_knobs(g))
        return out

    def _two_knob(self, index, n):
        dims = self.space.dims
        movable = [k for k, d in enumerate(dims) if d > 1]
        out = []
        if len(movable) < 2:
            return out
        genes = self.space.knob_indices(index)
        for _ in range(n):
            g = list(genes)
            for k in self.rng.choice(movable, 2, replace=False):
                g[k] = int(self.rng.integers(dims[k]))
            out.append(self.space.index_from_knobs(g))
        return out

    def _predict(self, indices):
        feats = [(i, self.features(i)) for i in indices]
        feats = [(i, f) for i, f in feats if f is not None]
        if not feats:
            return [], np.zeros(0)
        idx = [i for i, _ in feats]
        return idx, self.model.predict(np.stack([f for _, f in feats]))

    def _make_plan(self, exclude):
        import time
        t0 = time.perf_counter()
        measured = list(self.scores.items())
        if len(measured) < self.n_init:
            start = [0] if 0 not in self.visited and 0 not in exclude else []    # the default config
            return start + self.random_unvisited(max(1, self.n_init - len(measured) - len(start)),
                                                 set(exclude) | set(start))
        train = [(i, self.features(i), s) for i, s in measured]
        train = [(i, f, s) for i, f, s in train if f is not None]
        best = max((s for _, _, s in train), default=0.0)
        if len(train) < 2 or best <= 0:
            return self.random_unvisited(self.plan_size, exclude)
        X = np.stack([f for _, f, _ in train])
        y = np.array([s / best for _, _, s in train])
        self.model.fit(X, y)

        skip = self.visited | set(exclude)
        top = [i for i, _ in sorted(measured, key=lambda kv: -kv[1])[:self.top_k]]
        pool = set()
        for i in top:
            pool.update(self._neighbours(i))
            pool.update(self._two_knob(i, 8))
        pool.update(self.random_unvisited(self.pool_size, exclude=skip | pool))
        pool -= skip
        idx, pred = self._predict(sorted(pool))
        if not idx:
            return self.random_unvisited(self.plan_size, exclude)
        ranked = [idx[k] for k in np.argsort(-pred)]
        # one step of local search on the model around the best predictions
        more = set()
        for i in ranked[:3]:
            more.update(self._neighbours(i))
        more -= skip | set(idx)
        if more:
            idx2, pred2 = self._predict(sorted(more))
            idx, pred = idx + idx2, np.concatenate([pred, pred2])
            ranked = [idx[k] for k in np.argsort(-pred)]
        n_explore = int(round(self.epsilon * self.plan_size))
        sweep = self._sweep(skip)[:max(1, self.plan_size // 8)]
        ranked = [i for i in ranked if i not in set(sweep)]
        plan = sweep + self._diverse(ranked, self.plan_size - n_explore - len(sweep))
        rest = [i for i in ranked if i not in set(plan)]
        if n_explore and rest:
            plan += [int(x) for x in self.rng.choice(rest, min(n_explore, len(rest)), replace=False)]
        self.model_seconds += time.perf_counter() - t0
        return plan

    def _sweep(self, skip):
        """The unmeasured one-knob changes of the best config along its small knobs (2-3
        choices: on/off switches, orders). Early data confounds such switches with the other
        knobs (every parallel config measured so far had a poor tile, say), and the model would
        never try the switch on the best config; so the tuner tries it."""
        best = max(self.scores, key=self.scores.get)
        genes = self.space.knob_indices(best)
        out = []
        for k, d in enumerate(self.space.dims):
            if 1 < d <= 3:
                for c in range(d):
                    if c != genes[k]:
                        g = list(genes)
                        g[k] = c
                        idx = self.space.index_from_knobs(g)
                        if idx not in skip:
                            out.append(idx)
        return out

    def _diverse(self, ranked, k):
        """The best-ranked ``k``, skipping a candidate that differs in only one knob from one
        already picked (the model scores such neighbours alike; measuring all of them teaches
        little), then filling up in rank order."""
        picked, genes = [], []
        for i in ranked:
            g = self.space.knob_indices(i)
            if all(sum(a != b for a, b in zip(g, h)) >= 2 for h in genes):
                picked.append(i)
                genes.append(g)
                if len(picked) == k:
                    return picked
        chosen = set(picked)
        return picked + [i for i in ranked if i not in chosen][:k - len(picked)]

    def next_batch(self, n):
        out = []
        while len(out) < n and self.has_next():
            self._plan = [i for i in self._plan if i not in self.visited and i not in out]
            if not self._plan:
                self._plan = self._make_plan(exclude=out)
                self._plan = [i for i in self._plan if i not in self.visited and i not in out]
                if not self._plan:
                    break
            out.append(self._plan.pop(0))
        return [self.space.get(i) for i in out]
