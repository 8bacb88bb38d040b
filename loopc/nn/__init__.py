"""LeNet on loopc kernels: graph, autodiff, runtime, datasets, profiler."""
