"""Every tutorial runs, in its small mode (each accepts --small), and checks its own numbers."""
import subprocess
import sys
from pathlib import Path

import pytest

TUTORIALS = sorted((Path(__file__).parent.parent / "tutorials").glob("[0-9]*.py"))


@pytest.mark.parametrize("path", TUTORIALS, ids=[p.name for p in TUTORIALS])
def test_tutorial_runs(path):
    proc = subprocess.run([sys.executable, str(path), "--small"], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"{path.name} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"


def test_there_are_tutorials():
    assert len(TUTORIALS) >= 2


def _tutorial_module(name):
    import importlib.util
    path = Path(__file__).parent.parent / "tutorials" / name
    spec = importlib.util.spec_from_file_location(path.stem.lstrip("0123456789_"), path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cache_fit_puts_one_working_set_in_each_level_and_plots_it(tmp_path):
    import numpy as np
    from loopc.target import host
    t04 = _tutorial_module("04_tiling_and_locality.py")
    caches, _ = t04.cache_sizes()
    sets = dict(t04.working_sets(caches))
    assert sets["L1d"] <= caches["L1d"] < sets["L2"] <= caches["L2"] < sets["L3"] <= caches["L3"] < sets["memory"]
    cols = 4 * host().lanes("float32")
    rng = np.random.default_rng(3)
    a, x, y = rng.random((13, cols), dtype=np.float32), rng.random(13, dtype=np.float32), np.empty(cols, np.float32)
    t04.streamed_gemv(13, cols, 5)(a, x, y)
    np.testing.assert_allclose(y, 5 * (x.astype(np.float64) @ a), rtol=1e-5)
    rates = t04.question3_levels(caches, small=True, plot=tmp_path / "levels.png")
    assert list(rates) == ["L1d", "L2", "L3", "memory"] and all(r > 0 for r in rates.values())
    assert (tmp_path / "levels.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
