"""The loop IR: statements (``stmt``), shared expressions, one traversal (``visitor``), and
its text forms (``emitter``'s precedence rules, the ``printer``)."""
from .emitter import ExprEmitter
from .printer import IRPrinter, format_expr, format_func, format_stmt
from .stmt import (Allocate, Buffer, For, ForKind, IfThenElse, LoweredFunc, SeqStmt, Stmt, Store,
                   TensorStore, seq, stmt_exprs, walk_stmt)
from .visitor import StmtMutator, StmtVisitor, const_range, map_stmt

__all__ = ["Allocate", "Buffer", "For", "ForKind", "IfThenElse", "LoweredFunc", "SeqStmt", "Stmt",
           "Store", "TensorStore", "map_stmt", "seq", "stmt_exprs", "walk_stmt", "format_expr",
           "format_stmt", "format_func", "ExprEmitter", "IRPrinter", "StmtMutator", "StmtVisitor",
           "const_range"]
