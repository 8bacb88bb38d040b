"""A readable, Python-like text form of expressions and loop nests.

    for i.outer in parallel(4):
      for j in range(100):
        for i.inner in vectorized(32):
          if i.outer*32 + i.inner < 100:
            C[i.outer*3200 + i.inner*100 + j] = A[...] + B[...]

Importing this module makes it ``str()`` of a :class:`~loopc.ir.stmt.LoweredFunc`.
"""
from __future__ import annotations

from ..te import expr as E
from .emitter import PRECEDENCE, ExprEmitter
from .stmt import Allocate, Evaluate, For, ForKind, IfThenElse, LoweredFunc, SeqStmt, Store, TensorStore
from .visitor import StmtVisitor

#: ints other than int32 show their dtype: 7i64, 255u8, -1i8
_INT_SUFFIX = {"int8": "i8", "int16": "i16", "int64": "i64", "uint8": "u8", "uint16": "u16", "uint32": "u32",
               "uint64": "u64"}

_LOOP_FUNCS = {ForKind.SERIAL: "range", ForKind.PARALLEL: "parallel", ForKind.VECTORIZED: "vectorized",
               ForKind.UNROLLED: "unrolled"}


class IRPrinter(ExprEmitter):
    """``names`` (Var -> display name) disambiguates distinct loops that share a name."""

    def __init__(self, names=None):
        self.names = {} if names is None else names

    # ------------------------------------------------------------------ expressions

    def emit_Const(self, e, prec):
        if e.dtype == "bool":
            return "True" if e.value else "False"
        if E.is_float(e.dtype):
            text = repr(e.value)
            return text + ("f" if e.dtype == "float32" and text[-1].isdigit() and "inf" not in text else
                           "f16" if e.dtype == "float16" and "inf" not in text and "nan" not in text else "")
        return str(e.value) + _INT_SUFFIX.get(e.dtype, "")

    def emit_BitXor(self, e, prec):
        if isinstance(e.b, E.Const) and e.b.value == E.wrap_int(-1, e.dtype):      # te's ~x
            p = PRECEDENCE[E.Mul] + 1
            return f"~{self.expr(e.a, p)}"
        return self.binary(e, prec)

    def emit_Var(self, e, prec):
        return self.names.get(e, e.name)

    def emit_Min(self, e, prec):
        return f"{type(e).__name__.lower()}({self.expr(e.a)}, {self.expr(e.b)})"

    emit_Max = emit_Min

    def emit_Cast(self, e, prec):
        return f"{e.dtype}({self.expr(e.value)})"

    def emit_Select(self, e, prec):
        return f"if_then_else({self.expr(e.cond)}, {self.expr(e.t)}, {self.expr(e.f)})"

    def emit_Call(self, e, prec):
        return f"{e.name}({', '.join(self.expr(a) for a in e.args)})"

    def emit_TensorRead(self, e, prec):
        return f"{e.tensor.name}[{', '.join(self.expr(i) for i in e.indices)}]"

    def emit_Load(self, e, prec):
        return f"{e.buffer.name}[{self.expr(e.index)}]"

    def emit_Reduce(self, e, prec):
        axes = ", ".join(a.var.name for a in e.axes)
        where = "" if e.condition is None else f", where={self.expr(e.condition)}"
        init = "" if e.init is None else f", init={self.expr(e.init)}"
        return f"{e.combiner}({self.expr(e.source)}, axis=[{axes}]{where}{init})"

    def emit_ValueTuple(self, e, prec):
        return f"({', '.join(self.expr(v) for v in e.values)})"

    def emit_ExternCall(self, e, prec):
        head = f'"{e.name}"' if e.kind == "packed" else f'"{e.dtype}", "{e.name}"'
        return f"call_{e.kind}({', '.join([head] + [self.expr(a) for a in e.args])})"

    def emit_TensorArg(self, e, prec):
        return e.tensor.name

    def emit_BufferArg(self, e, prec):
        return e.buffer.name

    def emit_Expr(self, e, prec):
        return repr(e)

    # ------------------------------------------------------------------ statements

    def loop_header(self, s: For) -> str:
        ext, lo = self.expr(s.extent), self.expr(s.min)
        if isinstance(s.min, E.Const) and s.min.value == 0:
            rng = ext
        elif isinstance(s.extent, E.Sub) and E.expr_equal(s.extent.b, s.min):    # a symbolic tail: range(a, b)
            rng = f"{lo}, {self.expr(s.extent.a)}"
        else:
            rng = f"{lo}, {lo} + {ext}"
        var = self.names.get(s.var, s.var.name)
        if s.kind is ForKind.THREAD_BINDING:
            return f"for {var} in thread_binding({rng}, \"{s.thread_tag}\"):"
        return f"for {var} in {_LOOP_FUNCS.get(s.kind)}({rng}):"

    def stmt(self, s, indent: int = 0) -> list:
        pad = "  " * indent
        fx = self.expr
        if isinstance(s, For):
            return [pad + self.loop_header(s)] + self.stmt(s.body, indent + 1)
        if isinstance(s, SeqStmt):
            return [line for x in s.stmts for line in self.stmt(x, indent)]
        if isinstance(s, IfThenElse):
            out = [f"{pad}if {fx(s.cond)}:"] + self.stmt(s.then_case, indent + 1)
            if s.else_case is not None:
                out += [f"{pad}else:"] + self.stmt(s.else_case, indent + 1)
            return out
        if isinstance(s, TensorStore):
            return [f"{pad}{s.tensor.name}[{', '.join(fx(i) for i in s.indices)}] = {fx(s.value)}"]
        if isinstance(s, Store):
            return [f"{pad}{s.buffer.name}[{fx(s.index)}] = {fx(s.value)}"]
        if isinstance(s, Evaluate):
            return [pad + fx(s.value)]
        if isinstance(s, Allocate):
            b = s.buffer
            dims = ", ".join(map(str, b.shape))
            return [f"{pad}{b.name} = allocate({b.dtype}[{dims}], scope=\"{b.scope}\")"] + self.stmt(s.body, indent)
        return [pad + repr(s)]


def format_expr(e, prec: int = 0, names=None) -> str:
    """``names`` (Var -> display name) disambiguates distinct loops that share a name."""
    return IRPrinter(names).expr(e, prec)


def format_stmt(s, indent: int = 0, names=None) -> list:
    return IRPrinter(names).stmt(s, indent)


class _DisplayNames(StmtVisitor):
    def __init__(self):
        super().__init__()
        self.names = {}

    def visit_For(self, s):
        scope = [(f.var, self.names.get(f.var, f.var.name)) for f in self.stack if isinstance(f, For)]
        shown, n = self.names.get(s.var, s.var.name), 0
        while any(other is not s.var and name == shown for other, name in scope):
            n += 1
            shown = f"{s.var.name}#{n}"
        if shown != s.var.name:
            self.names[s.var] = shown
        return super().visit_For(s)


def display_names(body) -> dict:
    """Nested loops whose distinct variables share a name print as ``name#1``, ``name#2``..."""
    walk = _DisplayNames()
    walk.visit(body)
    return walk.names


def format_func(f: LoweredFunc) -> str:
    params = ", ".join([f"{b.name}: {b.dtype}[{', '.join(map(str, b.shape))}]" for b in f.params]
                       + [f"{v.name}: {v.dtype}" for v in f.size_vars])
    lines = IRPrinter(display_names(f.body)).stmt(f.body, 1)
    return "\n".join([f"def {f.name}({params}):"] + lines) + "\n"


LoweredFunc.formatter = staticmethod(format_func)
