"""loopc's one arithmetic layer: linear forms, interval bounds, proofs and simplification of
integer index expressions, over the ranges of the enclosing loops (``{Var: (lo, hi)}``).

- ``linear``: ``linear_form``, ``canonical_linear``, ``merge_divmod``, ``from_linear``;
- ``interval``: ``bound_of`` (with ``divmod_bound``) and bound inference's ``index_interval``;
- ``prove``: ``prove``, ``prune_conjuncts``, ``conjuncts``, ``conjoin``;
- ``simplify``: ``simplify_expr``, ``fold_constants``.

Every pass and backend uses these; none keeps a range analysis of its own.
"""
from .interval import bound_of, divmod_bound, divmod_interval, index_interval
from .linear import canonical_linear, from_linear, linear_form, merge_divmod
from .prove import conjoin, conjuncts, prove, prune_conjuncts
from .simplify import fold_constants, simplify_expr

__all__ = ["bound_of", "divmod_bound", "divmod_interval", "index_interval", "canonical_linear", "from_linear",
           "linear_form", "merge_divmod", "conjoin", "conjuncts", "prove", "prune_conjuncts", "fold_constants",
           "simplify_expr"]
