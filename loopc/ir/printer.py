"""A readable, Python-like text form of expressions and loop nests.

    for i.outer in parallel(4):
      for j in range(100):
        for i.inner in vectorized(32):
          if i.outer*32 + i.inner < 100:
            C[i.outer*3200 + i.inner*100 + j] = A[...] + B[...]
"""
from __future__ import annotations

from ..te import expr as E
from .stmt import Allocate, For, ForKind, IfThenElse, LoweredFunc, SeqStmt, Store, TensorStore

_PREC = {E.Or: 1, E.And: 2, E.Not: 3, E.LT: 4, E.LE: 4, E.EQ: 4, E.NE: 4,
         E.Add: 5, E.Sub: 5, E.Mul: 6, E.Div: 6, E.FloorDiv: 6, E.FloorMod: 6}


def format_expr(e, prec: int = 0, names=None) -> str:
    """``names`` (Var -> display name) disambiguates distinct loops that share a name."""
    def sub(x, p=0):
        return format_expr(x, p, names)
    return _format_expr(e, prec, sub, names or {})


def _format_expr(e, prec, format_expr, names) -> str:
    if isinstance(e, E.Const):
        if e.dtype == "bool":
            return "True" if e.value else "False"
        if E.is_float(e.dtype):
            text = repr(e.value)
            return text + ("f" if e.dtype == "float32" and text[-1].isdigit() and "inf" not in text else "")
        return str(e.value) + ("i64" if e.dtype == "int64" else "")
    if isinstance(e, E.Var):
        return names.get(e, e.name)
    if isinstance(e, (E.Min, E.Max)):
        return f"{type(e).__name__.lower()}({format_expr(e.a)}, {format_expr(e.b)})"
    if isinstance(e, E.BinaryOp):
        p = _PREC[type(e)]
        # right operand of - / // % needs parentheses at equal precedence
        sep = "*" if isinstance(e, E.Mul) else f" {e.symbol} "
        text = f"{format_expr(e.a, p)}{sep}{format_expr(e.b, p + 1)}"
        return f"({text})" if p < prec else text
    if isinstance(e, E.Not):
        return f"not {format_expr(e.a, 3)}"
    if isinstance(e, E.Cast):
        return f"{e.dtype}({format_expr(e.value)})"
    if isinstance(e, E.Select):
        return f"if_then_else({format_expr(e.cond)}, {format_expr(e.t)}, {format_expr(e.f)})"
    if isinstance(e, E.Call):
        return f"{e.name}({', '.join(format_expr(a) for a in e.args)})"
    if isinstance(e, E.TensorRead):
        return f"{e.tensor.name}[{', '.join(format_expr(i) for i in e.indices)}]"
    if isinstance(e, E.Load):
        return f"{e.buffer.name}[{format_expr(e.index)}]"
    if isinstance(e, E.Reduce):
        axes = ", ".join(a.var.name for a in e.axes)
        where = "" if e.condition is None else f", where={format_expr(e.condition)}"
        return f"{e.combiner}({format_expr(e.source)}, axis=[{axes}]{where})"
    return repr(e)


def _loop_header(s: For, names) -> str:
    ext = format_expr(s.extent, 0, names)
    lo = format_expr(s.min, 0, names)
    rng = ext if (isinstance(s.min, E.Const) and s.min.value == 0) else f"{lo}, {lo} + {ext}"
    var = names.get(s.var, s.var.name)
    fn = {ForKind.SERIAL: "range", ForKind.PARALLEL: "parallel", ForKind.VECTORIZED: "vectorized",
          ForKind.UNROLLED: "unrolled"}.get(s.kind)
    if s.kind is ForKind.THREAD_BINDING:
        return f"for {var} in thread_binding({rng}, \"{s.thread_tag}\"):"
    return f"for {var} in {fn}({rng}):"


def format_stmt(s, indent: int = 0, names=None) -> list:
    names = {} if names is None else names
    pad = "  " * indent

    def fx(e):
        return format_expr(e, 0, names)
    if isinstance(s, For):
        return [pad + _loop_header(s, names)] + format_stmt(s.body, indent + 1, names)
    if isinstance(s, SeqStmt):
        return [line for x in s.stmts for line in format_stmt(x, indent, names)]
    if isinstance(s, IfThenElse):
        out = [f"{pad}if {fx(s.cond)}:"] + format_stmt(s.then_case, indent + 1, names)
        if s.else_case is not None:
            out += [f"{pad}else:"] + format_stmt(s.else_case, indent + 1, names)
        return out
    if isinstance(s, TensorStore):
        return [f"{pad}{s.tensor.name}[{', '.join(fx(i) for i in s.indices)}] = {fx(s.value)}"]
    if isinstance(s, Store):
        return [f"{pad}{s.buffer.name}[{fx(s.index)}] = {fx(s.value)}"]
    if isinstance(s, Allocate):
        b = s.buffer
        dims = ", ".join(map(str, b.shape))
        return [f"{pad}{b.name} = allocate({b.dtype}[{dims}], scope=\"{b.scope}\")"] + format_stmt(s.body, indent, names)
    return [pad + repr(s)]


def display_names(body) -> dict:
    """Nested loops whose distinct variables share a name print as ``name#1``, ``name#2``..."""
    from .stmt import stmt_children
    names = {}

    def visit(st, scope):
        if isinstance(st, For):
            shown = names.get(st.var, st.var.name)
            n = 0
            while any(other is not st.var and name == shown for other, name in scope):
                n += 1
                shown = f"{st.var.name}#{n}"
            if shown != st.var.name:
                names[st.var] = shown
            scope = scope + [(st.var, shown)]
        for child in stmt_children(st)[0]:
            visit(child, scope)

    visit(body, [])
    return names


def format_func(f: LoweredFunc) -> str:
    params = ", ".join(f"{b.name}: {b.dtype}[{', '.join(map(str, b.shape))}]" for b in f.params)
    return "\n".join([f"def {f.name}({params}):"] + format_stmt(f.body, 1, display_names(f.body))) + "\n"
