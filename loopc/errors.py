"""Every error loopc raises on purpose derives from :class:`LoopcError`."""


class LoopcError(Exception):
    """Base class of loopc's errors."""


class ScheduleError(LoopcError):
    """An illegal schedule primitive: names the primitive, the stage and why."""

    def __init__(self, primitive, stage, message, fix=None):
        self.primitive = primitive
        self.stage = stage
        text = f"{primitive} on stage '{stage}': {message}"
        if fix:
            text += f"\n  how to fix: {fix}"
        super().__init__(text)


class LoweringError(LoopcError):
    """A schedule or argument list that cannot be lowered to loop IR."""


class BuildError(LoopcError):
    """Code generation or JIT compilation failed, or the target cannot run this IR."""


class ArgumentError(LoopcError, TypeError):
    """A compiled function called with a wrong count, shape, dtype or layout of arrays."""


class BoundsError(LoopcError, IndexError):
    """A bounds-checked kernel (``loopc.build(..., bounds_check=True)``) met an index outside its buffer."""


class AllocationError(LoopcError, MemoryError):
    """A kernel could not allocate an intermediate buffer."""


class UnsupportedError(LoopcError, ValueError):
    """A valid request that loopc does not implement (a layer option, an operator variant)."""


class ExternCallError(LoopcError, RuntimeError):
    """A function an extern stage calls (``te.call_packed``) raised, or is no longer registered;
    the function's own exception is the ``__cause__``."""
