"""Tuners that walk config indices: uniformly at random, or in order (grid search)."""
from __future__ import annotations

from .tuner import Tuner


class RandomTuner(Tuner):
    """Configs drawn uniformly at random, each at most once."""

    def next_batch(self, n):
        return [self.space.get(i) for i in self.random_unvisited(n)]


class GridSearchTuner(Tuner):
    """Configs in index order (the first knob varies fastest), skipping measured ones."""

    def __init__(self, task, seed=None):
        super().__init__(task, seed)
        self._next = 0

    def next_batch(self, n):
        out = []
        while len(out) < n and self._next < len(self.space):
            if self._next not in self.visited:
                out.append(self.space.get(self._next))
            self._next += 1
        return out
