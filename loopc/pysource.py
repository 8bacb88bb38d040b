"""Loop IR -> Python source. Serves as the reference interpreter (``loopc.interp``) and as
the base of GPU code emitters. Every loop kind runs as a plain serial loop here."""
from __future__ import annotations

import keyword
import math
import re

from .ir.stmt import Allocate, For, IfThenElse, LoweredFunc, SeqStmt, Store
from .te import expr as E

_CMP = {E.LT: "<", E.LE: "<=", E.EQ: "==", E.NE: "!="}
_ARITH = {E.Add: "+", E.Sub: "-", E.Mul: "*", E.Div: "/"}
_CAST = {"float32": "_f32", "float64": "_f64", "int32": "_i32", "int64": "_i64", "bool": "bool"}


class Namer:
    """Unique Python identifiers for Vars and Buffers (``i.outer`` -> ``i_outer``)."""

    def __init__(self, reserved=()):
        import builtins
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


class PySourceEmitter:
    def __init__(self, namer=None, reserved=()):
        """``reserved``: names the generated code uses (runtime helpers) that nothing may shadow."""
        self.name = namer or Namer(reserved)
        self.ranges = {}      # Var -> (lo, hi) of the enclosing loops with constant bounds

    def wraps(self, e) -> bool:
        """Whether integer arithmetic ``e`` may leave its dtype, so that its result must wrap
        (two's complement, like numpy); index math that the loop ranges bound does not."""
        from .lower.passes import bound_of
        if not (E.is_int(e.dtype) and isinstance(e, (E.Add, E.Sub, E.Mul, E.FloorDiv, E.FloorMod))):
            return False
        if isinstance(e, (E.FloorDiv, E.FloorMod)) and isinstance(e.b, E.Const) and e.b.value > 0:
            return False
        bound = bound_of(e, self.ranges)
        lo, hi = (-2**31, 2**31 - 1) if e.dtype == "int32" else (-2**63, 2**63 - 1)
        return bound is None or bound[0] < lo or bound[1] > hi

    def expr(self, e) -> str:
        if isinstance(e, E.Const):
            if e.dtype == "bool":
                return repr(bool(e.value))
            if E.is_float(e.dtype):
                v = float(e.value)
                text = repr(v) if math.isfinite(v) else f"float('{v!r}')"
                return f"{_CAST[e.dtype]}({text})"
            return repr(int(e.value))
        if isinstance(e, E.Var):
            return self.name(e, e.name)
        if isinstance(e, E.Load):
            return f"{self.name(e.buffer, e.buffer.name)}[{self.expr(e.index)}]"
        if isinstance(e, E.Min):
            return f"_min({self.expr(e.a)}, {self.expr(e.b)})"
        if isinstance(e, E.Max):
            return f"_max({self.expr(e.a)}, {self.expr(e.b)})"
        if isinstance(e, (E.FloorDiv, E.FloorMod)):
            op = "//" if isinstance(e, E.FloorDiv) else "%"
            if isinstance(e.b, E.Const) and E.is_int(e.dtype) and e.b.value > 0:
                return f"({self.expr(e.a)} {op} {self.expr(e.b)})"   # index math: plain Python
            helper = "_floordiv" if op == "//" else "_floormod"      # x // 0 == 0, floats floor(a / b)
            text = f"{helper}({self.expr(e.a)}, {self.expr(e.b)})"
            return f"{_CAST[e.dtype]}({text})" if self.wraps(e) else text
        if type(e) in _ARITH:
            text = f"({self.expr(e.a)} {_ARITH[type(e)]} {self.expr(e.b)})"
            return f"{_CAST[e.dtype]}{text}" if self.wraps(e) else text
        if type(e) in _CMP:
            return f"({self.expr(e.a)} {_CMP[type(e)]} {self.expr(e.b)})"
        if isinstance(e, E.And):
            return f"({self.expr(e.a)} and {self.expr(e.b)})"
        if isinstance(e, E.Or):
            return f"({self.expr(e.a)} or {self.expr(e.b)})"
        if isinstance(e, E.Not):
            return f"(not {self.expr(e.a)})"
        if isinstance(e, E.Cast):
            return f"{_CAST[e.dtype]}({self.expr(e.value)})"
        if isinstance(e, E.Select):
            return f"({self.expr(e.t)} if {self.expr(e.cond)} else {self.expr(e.f)})"
        if isinstance(e, E.Call):
            return f"_{e.name}({', '.join(self.expr(a) for a in e.args)})"
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
            saved = self.ranges.get(s.var)
            if isinstance(s.min, E.Const) and isinstance(s.extent, E.Const):
                self.ranges[s.var] = (s.min.value, s.min.value + s.extent.value - 1)
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
            out.append(f"{pad}{self.name(b, b.name)} = _alloc({b.size}, {b.dtype!r})")
            self.stmt(s.body, indent, out)
        else:
            raise TypeError(f"cannot emit {type(s).__name__} as Python")

    def function(self, func: LoweredFunc) -> str:
        params = [self.name(b, b.name) for b in func.params]
        out = [f"def {self.name(func, func.name)}({', '.join(params)}):"]
        self.stmt(func.body, 1, out)
        return "\n".join(out) + "\n"
