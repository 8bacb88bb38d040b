"""Runtime: compiled Modules, argument checks, timing and the thread pool."""
