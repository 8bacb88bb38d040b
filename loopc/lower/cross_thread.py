"""A reduction loop bound to ``threadIdx.*`` (TVM's cross-thread reduction) as a tree in shared
memory.

Each thread of the bound loop combines its share of the reduction into its own slot of a
shared buffer; then rounds of half as many threads combine pairs of slots (into a second
buffer, alternating, so no round reads what it writes); thread 0 stores the result. The
CUDA target puts a barrier between the rounds (a write of a shared buffer, then a read);
the interpreter runs the same loops one after another.

    B[i] = sum(A[i, k], k)              for i.outer in thread_binding(.., "blockIdx.x"):
    k.inner bound to threadIdx.x (T)      for i.inner in thread_binding(.., "threadIdx.y"):
                                   ->       for k.inner in thread_binding(T, "threadIdx.x"):
                                              red0[i.inner, k.inner] = 0
                                              for k.outer: red0[i.inner, k.inner] += A[i, k.outer*T + k.inner]
                                            for t in thread_binding(ceil(T/2), "threadIdx.x"):
                                              red1[i.inner, t] = red0[i.inner, t] + red0[i.inner, t + ceil(T/2)]
                                            ...                                 # until one slot is left
                                            B[i] = red1[i.inner, 0]             # thread 0 of threadIdx.x

A thread count that is not a power of two is fine: a round whose input has an odd number of
slots passes the last one through.
"""
from __future__ import annotations

from ..errors import LoweringError
from ..ir.stmt import Buffer, For, ForKind, IfThenElse, TensorStore, seq
from ..te import expr as E
from ..te.tensor import IterKind, PlaceholderOp


def bound_reduce_leaf(stage):
    """The reduction loop of ``stage`` bound to a thread index, or None."""
    bound = [iv for iv in stage.leaf_iter_vars if iv.kind is IterKind.REDUCE and iv in stage.bindings]
    if len(bound) > 1:
        raise LoweringError(f"stage '{stage.name}' binds reduction loops {', '.join(iv.name for iv in bound)} to "
                            "threads; bind one (fuse them first)")
    return bound[0] if bound else None


def _check_shape(stage, leaves, p, tx):
    from ..schedule.stage import AttachKind
    name = stage.name
    if stage.attach is not AttachKind.ROOT:
        raise LoweringError(f"stage '{name}' reduces across threads ({tx.name}) and is computed at a loop of "
                            f"'{stage.attach_stage.name}'; loopc supports a cross-thread reduction at the root: "
                            f"call s[{name}].compute_root()")
    late = [iv.name for iv in leaves[p:] if iv.kind is not IterKind.REDUCE]
    if late:
        raise LoweringError(f"stage '{name}' has data-parallel loop(s) {', '.join(late)} inside its reduction loops; "
                            f"with a cross-thread reduction, reorder them outside: s[{name}].reorder(...)")
    tags = [(n, stage.bindings[iv].thread_tag) for n, iv in enumerate(leaves[:p]) if iv in stage.bindings]
    blocks = [n for n, tag in tags if tag.startswith("blockIdx")]
    threads = [n for n, tag in tags if tag.startswith("threadIdx")]
    if not blocks:
        raise LoweringError(f"stage '{name}' reduces across threads but binds no loop to blockIdx; bind an outer "
                            f"loop to blockIdx.x (for a single output, a unit loop: s[{name}].fuse())")
    if threads and min(threads) < max(blocks):
        raise LoweringError(f"stage '{name}': a loop bound to threadIdx encloses one bound to blockIdx; put the "
                            "blockIdx loops outside (reorder)")
    return leaves[max(blocks)], [leaves[n] for n in threads]


def cross_thread_nest(stage, leaves, extents, make_nest, red, store, guards, attach, predicate, buffer_map):
    """The nest of a reduction whose loop ``tx`` is bound to ``threadIdx.*``.

    ``store`` is (tensor, index) of the stage's output; ``guards`` the (condition,
    is-reduction) tail guards; ``predicate`` the store predicate (or None); the shared
    buffers it allocates are added to ``buffer_map``. Returns (stmt, buffers).
    """
    kinds, bindings = stage.iter_kinds, stage.bindings
    p = next(n for n, iv in enumerate(leaves) if iv.kind is IterKind.REDUCE)
    tx = bound_reduce_leaf(stage)
    block_leaf, thread_leaves = _check_shape(stage, leaves, p, tx)
    tag, T = bindings[tx].thread_tag, extents[tx]
    if not isinstance(T, int):
        raise LoweringError(f"stage '{stage.name}': the reduction loop '{tx.name}' bound to {tag} has the symbolic "
                            f"extent {T}; split it by a constant factor and bind the inner loop")
    rows = tuple(extents[iv] for iv in thread_leaves)
    row_idx = tuple(iv.var for iv in thread_leaves)
    dtype = red.dtype

    sizes = [T]
    while sizes[-1] > 1:
        sizes.append(-(-sizes[-1] // 2))
    tensors, buffers = [], []
    for n, size in enumerate((T, sizes[1] if len(sizes) > 1 else 1)):
        op = PlaceholderOp(f"{stage.name}.red{n}", rows + (size,), dtype)
        buf = Buffer(op.name, op.shape, dtype, "shared")
        buffer_map[op.output(0)] = buf
        tensors.append(op.output(0))
        buffers.append(buf)

    def slot(n, t):
        return (tensors[n], row_idx + (t,))

    outer_vars = {iv.var for iv in leaves[:p]}
    outer_guards = [g for g, _ in guards if E.free_vars(g) <= outer_vars]
    inner_guards = [g for g, _ in guards if not E.free_vars(g) <= outer_vars]

    # each thread's share
    acc_t, acc_i = slot(0, tx.var)
    update = TensorStore(acc_t, acc_i, red.combine(E.TensorRead(acc_t, acc_i), red.source))
    if red.condition is not None:
        update = IfThenElse(red.condition, update)
    others = [iv for iv in leaves[p:] if iv is not tx]
    body = seq(TensorStore(acc_t, acc_i, red.identity()), make_nest(others, extents, kinds, bindings, update,
                                                                     inner_guards, attach))
    parts = [make_nest([tx], extents, kinds, bindings, body, [], attach)]

    # the tree
    src = 0
    for n_in, n_out in zip(sizes, sizes[1:]):
        t = E.Var(f"{tx.name}.t{n_out}")
        a = E.TensorRead(*slot(src, t))
        b = E.TensorRead(*slot(src, t + n_out))
        value = red.combine(a, b)
        if 2 * n_out != n_in:
            value = E.Select(t + n_out < n_in, value, a)
        dst_t, dst_i = slot(1 - src, t)
        parts.append(For(t, E.Const(0), E.Const(n_out), ForKind.THREAD_BINDING, TensorStore(dst_t, dst_i, value), tag))
        src = 1 - src

    tensor, index = store
    final = TensorStore(tensor, index, E.TensorRead(*slot(src, E.Const(0))))
    if predicate is not None:
        final = IfThenElse(E.substitute(predicate, {tx.var: E.Const(0)}), final)
    parts.append(final)

    with_buffers = dict(attach)
    with_buffers[block_leaf] = list(attach.get(block_leaf, ())) + [((buf,), seq()) for buf in buffers]
    return make_nest(leaves[:p], extents, kinds, bindings, seq(*parts), outer_guards, with_buffers), buffers
