"""The loop IR: statements (``stmt``), shared expressions and a printer."""
from .printer import format_expr, format_stmt, format_func
from .stmt import (Allocate, Buffer, For, ForKind, IfThenElse, LoweredFunc, SeqStmt, Stmt, Store,
                   TensorStore, map_stmt, seq, stmt_exprs, walk_stmt)

__all__ = ["Allocate", "Buffer", "For", "ForKind", "IfThenElse", "LoweredFunc", "SeqStmt", "Stmt",
           "Store", "TensorStore", "map_stmt", "seq", "stmt_exprs", "walk_stmt", "format_expr",
           "format_stmt", "format_func"]
