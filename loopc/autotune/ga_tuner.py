"""A genetic algorithm over knob choices (AutoTVM's GATuner).

A genome is the list of per-knob choice indices. Each generation keeps the ``elite_num`` best
genomes measured so far, breeds children from parents picked in proportion to their GFLOP/s
(uniform crossover, then each gene mutates with ``mutation_prob``), and measures the children
that were never measured.
"""
from __future__ import annotations

import numpy as np

from .tuner import Tuner


class GATuner(Tuner):
    def __init__(self, task, pop_size=16, elite_num=3, mutation_prob=0.1, seed=None):
        super().__init__(task, seed)
        self.pop_size = max(2, min(int(pop_size), len(self.space)))
        self.elite_num = min(int(elite_num), self.pop_size)
        self.mutation_prob = float(mutation_prob)
        self.dims = self.space.dims
        self._queue = []

    def _genes(self, index):
        return self.space.knob_indices(index)

    def _index(self, genes):
        return self.space.index_from_knobs(genes)

    def _next_generation(self):
        measured = sorted(self.scores.items(), key=lambda kv: -kv[1])
        if len(measured) < self.pop_size or measured[0][1] <= 0:
            return self.random_unvisited(self.pop_size)
        parents = measured[:self.pop_size]
        genes = [self._genes(i) for i, _ in parents]
        fitness = np.array([s for _, s in parents], dtype=np.float64) + 1e-9
        prob = fitness / fitness.sum()
        children, taken = [], set()
        tries = 0
        while len(children) < self.pop_size - self.elite_num and tries < 50 * self.pop_size:
            tries += 1
            a, b = self.rng.choice(len(genes), 2, p=prob)
            mask = self.rng.random(len(self.dims)) < 0.5
            child = [ga if m else gb for ga, gb, m in zip(genes[a], genes[b], mask)]
            for k, d in enumerate(self.dims):
                if d > 1 and self.rng.random() < self.mutation_prob:
                    child[k] = int(self.rng.integers(d))
            idx = self._index(child)
            if idx not in self.visited and idx not in taken:
                taken.add(idx)
                children.append(idx)
        fill = self.pop_size - self.elite_num - len(children)
        return children + self.random_unvisited(max(fill, 0), exclude=taken)

    def next_batch(self, n):
        out = []
        while len(out) < n and self.has_next():
            self._queue = [i for i in self._queue if i not in self.visited and i not in out]
            if not self._queue:
                self._queue = [i for i in self._next_generation() if i not in out]
                if not self._queue:
                    break
            out.append(self._queue.pop(0))
        return [self.space.get(i) for i in out]
