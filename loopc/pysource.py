"""Loop IR -> Python source. Serves as the reference interpreter (``loopc.interp``) and as
the base of GPU code emitters. Every loop kind runs as a plain serial loop here."""
from __future__ import annotations

import builtins
import keyword
import math
import re

from .arith import bound_of
from .ir.emitter import ExprEmitter
from .ir.stmt import Allocate, Evaluate, For, IfThenElse, LoweredFunc, SeqStmt, Store
from .ir.visitor import const_range
from .te import expr as E

_CAST = {"float16": "_f16", "float32": "_f32", "float64": "_f64", "int8": "_i8", "int16": "_i16", "int32": "_i32",
         "int64": "_i64", "uint8": "_u8", "uint16": "_u16", "uint32": "_u32", "uint64": "_u64", "bool": "bool"}


class Namer:
    """Unique Python identifiers for Vars and Buffers (``i.outer`` -> ``i_outer``)."""

    def __init__(self, reserved=()):
        self.names = {}
        self.taken = set(reserved) | set(dir(builtins))

    def __call__(self, obj, hint: str) -> str:
        if obj in self.names:
            return self.names[obj]
        base = re.sub(r"\W", "_", hint) or "v"
        if base[0].isdigit() or keyword.iskeyword(base):
            base = "_" + base
        name, n = base, 1
        while name in self.taken:
            name, n = f"{base}_{n}", n + 1
        self.taken.add(name)
        self.names[obj] = name
        return name


class PySourceEmitter(ExprEmitter):
    """Python source of loop IR: every operator in parentheses, integer arithmetic wrapped to
    its dtype where it may leave it (see :meth:`wraps`)."""

    full_parens = True
    tight_mul = False

    def __init__(self, namer=None, reserved=()):
        """``reserved``: names the generated code uses (runtime helpers) that nothing may shadow."""
        self.name = namer or Namer(reserved)
        self.ranges = {}      # Var -> (lo, hi) of the enclosing loops with constant bounds

    def wraps(self, e) -> bool:
        """Whether integer arithmetic ``e`` may leave its dtype, so that its result must wrap
        (two's complement, like numpy); index math that the loop ranges bound does not."""
        if not (E.is_int(e.dtype) and isinstance(e, (E.Add, E.Sub, E.Mul, E.FloorDiv, E.FloorMod, E.ShiftLeft))):
            return False
        if isinstance(e, E.ShiftLeft):
            return True
        if isinstance(e, (E.FloorDiv, E.FloorMod)) and isinstance(e.b, E.Const) and e.b.value > 0:
            return False
        bound = bound_of(e, self.ranges)
        lo, hi = E.int_range(e.dtype)
        return bound is None or bound[0] < lo or bound[1] > hi

    # ------------------------------------------------------------------ expressions

    def emit_Const(self, e, prec):
        if e.dtype == "bool":
            return repr(bool(e.value))
        if E.is_float(e.dtype):
            v = float(e.value)
            text = repr(v) if math.isfinite(v) else f"float('{v!r}')"
            return f"{_CAST[e.dtype]}({text})"
        return repr(int(e.value))

    def emit_Var(self, e, prec):
        return self.name(e, e.name)

    def emit_Load(self, e, prec):
        return f"{self.name(e.buffer, e.buffer.name)}[{self.expr(e.index)}]"

    def emit_Min(self, e, prec):
        return f"_{type(e).__name__.lower()}({self.expr(e.a)}, {self.expr(e.b)})"

    emit_Max = emit_Min

    def emit_BinaryOp(self, e, prec):
        if isinstance(e, (E.FloorDiv, E.FloorMod)) and not (
                isinstance(e.b, E.Const) and E.is_int(e.dtype) and e.b.value > 0):   # not index math:
            helper = "_floordiv" if isinstance(e, E.FloorDiv) else "_floormod"    # x // 0 == 0, floats
            text = f"{helper}({self.expr(e.a)}, {self.expr(e.b)})"                 # floor(a / b)
            return f"{_CAST[e.dtype]}({text})" if self.wraps(e) else text
        text = super().emit_BinaryOp(e, prec)
        if isinstance(e, (E.Add, E.Sub, E.Mul, E.Div)) and self.wraps(e):
            return f"{_CAST[e.dtype]}{text}"
        return text

    def emit_ShiftLeft(self, e, prec):
        text = f"_shl({self.expr(e.a)}, {self.expr(e.b)}, {E.bits(e.dtype)})"
        return f"{_CAST[e.dtype]}({text})"

    def emit_ShiftRight(self, e, prec):
        return f"_shr({self.expr(e.a)}, {self.expr(e.b)}, {E.bits(e.dtype)})"

    def emit_Cast(self, e, prec):
        return f"{_CAST[e.dtype]}({self.expr(e.value)})"

    def emit_Call(self, e, prec):
        if e.name == "popcount":
            return f"_popcount({self.expr(e.args[0])}, {E.bits(e.dtype)})"
        return f"_{e.name}({', '.join(self.expr(a) for a in e.args)})"

    def emit_Expr(self, e, prec):
        raise TypeError(f"cannot emit {type(e).__name__} as Python")

    #: Python compiles at most 20 nested blocks per function: deeper loop nests continue in a
    #: nested function (a closure reads the enclosing loops' variables and buffers)
    MAX_BLOCK_DEPTH = 16

    def stmt(self, s, indent: int, out: list):
        pad = "    " * indent
        if isinstance(s, (For, IfThenElse)) and indent - getattr(self, "_base", 0) >= self.MAX_BLOCK_DEPTH:
            name = self.name(object(), "_nest")
            out.append(f"{pad}def {name}():")
            saved, self._base = getattr(self, "_base", 0), indent + 1
            self.stmt(s, indent + 1, out)
            self._base = saved
            out.append(f"{pad}{name}()")
            return
        if isinstance(s, For):
            v = self.name(s.var, s.var.name)
            lo = self.expr(s.min)
            out.append(f"{pad}for {v} in range({lo}, {lo} + {self.expr(s.extent)}):")
            saved, rng = self.ranges.get(s.var), const_range(s)
            if rng is not None:
                self.ranges[s.var] = rng
            self.stmt(s.body, indent + 1, out)
            if saved is None:
                self.ranges.pop(s.var, None)
            else:
                self.ranges[s.var] = saved
        elif isinstance(s, SeqStmt):
            if not s.stmts:
                out.append(f"{pad}pass")
            for x in s.stmts:
                self.stmt(x, indent, out)
        elif isinstance(s, IfThenElse):
            out.append(f"{pad}if {self.expr(s.cond)}:")
            self.stmt(s.then_case, indent + 1, out)
            if s.else_case is not None:
                out.append(f"{pad}else:")
                self.stmt(s.else_case, indent + 1, out)
        elif isinstance(s, Store):
            out.append(f"{pad}{self.name(s.buffer, s.buffer.name)}[{self.expr(s.index)}] = {self.expr(s.value)}")
        elif isinstance(s, Allocate):
            b = s.buffer
            size = b.size if isinstance(b.size, int) else self.expr(b.size)
            out.append(f"{pad}{self.name(b, b.name)} = _alloc({size}, {b.dtype!r})")
            self.stmt(s.body, indent, out)
        elif isinstance(s, Evaluate):
            out.append(pad + self.extern_call(s.value))
        else:
            raise TypeError(f"cannot emit {type(s).__name__} as Python")

    def extern_call(self, call) -> str:
        """``_call_packed(name, views...)`` or ``_call_extern(name, dtype, (kind, value)...)``: the
        interpreter's runtime (``loopc.runtime.packed``) makes the call."""
        from .te.extern import BufferArg
        args = []
        for a in call.args:
            if isinstance(a, BufferArg):
                b = a.buffer
                name = self.name(b, b.name)
                args.append(f"_view({name}, {tuple(b.shape)!r}, {a.writes})" if call.kind == "packed"
                            else f"('buffer', {name})")
            else:
                args.append(self.expr(a) if call.kind == "packed" else f"({a.dtype!r}, {self.expr(a)})")
        if call.kind == "packed":
            return f"_call_packed({call.name!r}, [{', '.join(args)}])"
        return f"_call_extern({call.name!r}, {call.dtype!r}, [{', '.join(args)}])"

    def function(self, func: LoweredFunc) -> str:
        params = [self.name(b, b.name) for b in func.params] + [self.name(v, v.name) for v in func.size_vars]
        out = [f"def {self.name(func, func.name)}({', '.join(params)}):"]
        self.stmt(func.body, 1, out)
        return "\n".join(out) + "\n"
