"""The LLVM types and constants loopc's code generator uses: one table per dtype."""
from __future__ import annotations

import llvmlite.ir as ir

I1, I8, I16, I32, I64 = ir.IntType(1), ir.IntType(8), ir.IntType(16), ir.IntType(32), ir.IntType(64)
F16, F32, F64 = ir.HalfType(), ir.FloatType(), ir.DoubleType()
PTR = ir.PointerType()
VOID = ir.VoidType()
# int32 values (every loop variable and index) are computed in 64-bit registers and stored as
# 32 bits: addresses need no sign extension, which keeps LLVM's loop passes (IndVarSimplify,
# LSR) from rewriting every index — half of a convolution's build time — and drops a movslq
# per access from the hot loops. int32 data is widened on load and truncated on store.
# The other integers compute in their own width (LLVM's add/sub/mul wrap like numpy; unsigned
# ones take the unsigned compare/divide/shift). float16 is stored as half and computed in float32,
# rounded to half after every operation: IEEE half arithmetic for + - * / (float32 holds the
# exact result of two halves closely enough that one rounding to half is correct), and no half
# instruction that an x86 CPU lacks; math functions round once, at the end. (Conversions: see
# conversions.py.)
LLTYPE = {"float16": F32, "float32": F32, "float64": F64, "int8": I8, "int16": I16, "int32": I64, "int64": I64,
          "uint8": I8, "uint16": I16, "uint32": I32, "uint64": I64, "bool": I1}
MEMTYPE = {**LLTYPE, "int32": I32, "bool": I8, "float16": F16}
NBYTES = {"float16": 2, "float32": 4, "float64": 8, "int8": 1, "int16": 2, "int32": 4, "int64": 8,
          "uint8": 1, "uint16": 2, "uint32": 4, "uint64": 8, "bool": 1}
FMF = ("contract",)          # let LLVM fuse a*b+c into one fma
STACK_LIMIT = 64 * 1024      # intermediates up to this many bytes live on the stack ...
STACK_BUDGET = 256 * 1024    # ... while a function's stack holds at most this many (threads' stacks are small)
ALIGN = 64
MAX_SHUFFLED_STRIDE = 4      # strided vector loads up to this stride: a wide load and a shuffle
