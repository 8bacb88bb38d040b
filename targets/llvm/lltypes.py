"""The LLVM types and constants loopc's code generator uses: one table per dtype."""
from __future__ import annotations

import llvmlite.ir as ir

I1, I8, I32, I64 = ir.IntType(1), ir.IntType(8), ir.IntType(32), ir.IntType(64)
F32, F64 = ir.FloatType(), ir.DoubleType()
PTR = ir.PointerType()
VOID = ir.VoidType()
# int32 values (every loop variable and index) are computed in 64-bit registers and stored as
# 32 bits: addresses need no sign extension, which keeps LLVM's loop passes (IndVarSimplify,
# LSR) from rewriting every index — half of a convolution's build time — and drops a movslq
# per access from the hot loops. int32 data is widened on load and truncated on store.
LLTYPE = {"float32": F32, "float64": F64, "int32": I64, "int64": I64, "bool": I1}
MEMTYPE = {**LLTYPE, "int32": I32, "bool": I8}
NBYTES = {"float32": 4, "float64": 8, "int32": 4, "int64": 8, "bool": 1}
INT_RANGE = {"int32": (-2**31, 2**31 - 1), "int64": (-2**63, 2**63 - 1)}
FMF = ("contract",)          # let LLVM fuse a*b+c into one fma
STACK_LIMIT = 64 * 1024      # intermediates up to this many bytes live on the stack ...
STACK_BUDGET = 256 * 1024    # ... while a function's stack holds at most this many (threads' stacks are small)
ALIGN = 64
MAX_SHUFFLED_STRIDE = 4      # strided vector loads up to this stride: a wide load and a shuffle
