"""Applications built on loopc — not part of the compiler; each is imported only by what runs it
(a ``loopc`` CLI command, a benchmark script, a tutorial):

- ``ladder``       the GEMM schedule ladder (``loopc show``, ``loopc bench --ladder``, tutorial 2)
- ``benchsuite``   the operator suite beside numpy and PyTorch (``loopc bench``, benchmarks/bench_ops.py)
- ``lenet_bench``  LeNet latency and profiles beside PyTorch (``loopc lenet bench``, benchmarks/lenet.py)
- ``demo``         LeNet trained on the embedded MNIST subset (``loopc demo``, ``make demo``)

This package imports none of them.
"""
