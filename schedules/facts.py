"""The sizes CPU templates are made of, derived from the Target's facts (``loopc.target``).

A template never names a machine: it asks ``cpu_facts(target)`` how wide a vector register is
and how many of them a register tile may use. The rules (float32 lanes; AVX2 = 8 lanes, 16
registers; AVX-512 = 16 lanes, 32 registers):

==================  ====================================  ==========  ============
fact                rule                                  AVX2        AVX-512
==================  ====================================  ==========  ============
lanes               float32 lanes of one register         8           16
vec                 a vector loop: two registers           16          32
accumulators        registers - 4 (a broadcast input,     12          28
                    two loaded vectors, one spare)
gemm_rows           rows of the GEMM tile: half the        4           8
                    registers hold its 2-register rows
                    (the unrolled k steps' B vectors
                    take the other half)
l1d, l2             cache bytes of one core                the OS's    the OS's
==================  ====================================  ==========  ============

Widths are counted in float32 lanes whatever the dtype (the library's ops are float32; an
op of another dtype gets the same element counts as before).
"""
from __future__ import annotations

from dataclasses import dataclass

from loopc.target import CPUTarget, Target, host

#: registers a register tile leaves to its operands: a broadcast input value, up to two
#: loaded vectors (one per register of a 2-register row), and one spare for the compiler
OPERAND_REGISTERS = 4


@dataclass(frozen=True)
class CPUFacts:
    lanes: int            # float32 elements of one vector register
    registers: int        # architectural vector registers
    l1d: int              # bytes
    l2: int               # bytes

    @property
    def vec(self) -> int:
        """A vector loop's width: two registers per iteration (two independent operations)."""
        return 2 * self.lanes

    @property
    def accumulators(self) -> int:
        """Registers a register tile may keep as accumulators."""
        return self.registers - OPERAND_REGISTERS

    @property
    def gemm_rows(self) -> int:
        """Rows of the GEMM register tile, each ``vec`` wide: half the registers."""
        return (self.registers // 2) // (self.vec // self.lanes)

    def regs(self, width: int) -> int:
        """Registers that hold ``width`` float32 lanes."""
        return -(-width // self.lanes)


def cpu_target(target=None) -> CPUTarget:
    """``target`` (a string, a CPUTarget, or None: this machine) as a CPUTarget."""
    return host() if target is None else Target.parse(target)


def cpu_facts(target=None) -> CPUFacts:
    t = cpu_target(target)
    return CPUFacts(t.lanes("float32"), t.vector_registers, t.cache_bytes("l1d"), t.cache_bytes("l2"))
