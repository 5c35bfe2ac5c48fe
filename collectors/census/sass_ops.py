"""What one SASS instruction is (collectors/census/sass_disasm.py): its pipe class and the registers it reads and
writes.

`classify` puts every instruction in one pipe class (CLASSES):

    hgmma          HGMMA (Hopper's wgmma.mma_async)
    warpgroup      WARPGROUP.ARRIVE (wgmma.fence) and WARPGROUP.DEPBAR (wgmma.wait_group)
    mufu_ex2, mufu_other   MUFU.EX2; the special-function unit's other ops (RCP, LG2, ...)
    fp32, fp16x2, fp64     FFMA FADD FMUL FMNMX ...; HFMA2 HADD2 HMUL2 HMNMX2; DFMA DADD DMUL
    conversion     F2F F2FP F2I I2F I2FP FRND ...
    predicate      ISETP FSETP HSETP2 PLOP3 SEL FSEL and their uniform forms (UISETP USEL UPLOP3)
    integer        the vector integer ALU: IMAD IADD3 LOP3 SHF LEA MOV PRMT IABS VIADD S2R CS2R P2R VOTE ...
    uniform        the uniform datapath's other ops (UMOV UIADD3 ULEA USHF ULOP3 R2UR S2UR VOTEU ...)
    constant       LDC ULDC (constant-cache loads)
    shuffle        SHFL
    smem_load, smem_store  LDS LDSM; STS STSM
    global         LDG STG LDGSTS (cp.async) and its LDGDEPBAR / DEPBAR waits, ATOMG RED
    tma            UTMALDG UTMASTG UBLKCP UTMAPF ... (cp.async.bulk)
    barrier, bar_arrive    BAR.SYNC / BAR.RED; BAR.ARV
    mbarrier_wait, mbarrier_other  SYNCS.PHASECHK (try_wait); SYNCS.ARRIVE / SYNCS.EXCH (arrive, init)
    control        BRA BRX EXIT RET CALL WARPSYNC BSSY BSYNC NOP YIELD
    predicated_off an instruction under `@!PT`: it issues and never executes (ptxas's `@!PT LDS RZ, [RZ]`)
    other          the rest (FENCE, MEMBAR, USETMAXREG, ...)

`operands_rw` gives the registers one instruction writes and reads, for the replay's dependencies
(perfmodel/model/critical_path.py). Registers are R, UR, P and UP (RZ, URZ, PT, UPT are constants and name none); a
guard predicate is read; vector and 64-bit operands name every register (`LDS.128 R4` writes R4..R7, `[R2.64]`
reads R2 and R3, `desc[UR4]` UR4 and UR5, `IMAD.WIDE`'s addend two, `UIADD3.64` pairs); leading predicates are
written by compares (`ISETP P0, PT, ...`), carry-outs (`IADD3 R1, P0, P1, ...`) and LOP3 / SHFL / TRYWAIT; PR
(P2R, R2P) is the seven predicates. An HGMMA writes its accumulator (m·n/128 registers a thread for F32, half for
F16), and reads it unless it is RZ (a fresh one), its A registers (RS: m·k elements over 128 threads) and its
descriptors: SS `gdesc[URx]` is URx..URx+3, A's then B's; RS reads B's, URx+2 and URx+3 (the uniform registers
the code before each HGMMA sets). tests/test_sass_mix.py checks these sets against the scoreboard waits and
stall counts ptxas scheduled.
"""

from __future__ import annotations

import re

from collectors.census.sass_disasm import SassInstruction

CLASSES = ("hgmma", "warpgroup", "mufu_ex2", "mufu_other", "fp32", "fp16x2", "fp64", "conversion", "predicate",
           "integer", "uniform", "constant", "shuffle", "smem_load", "smem_store", "global", "tma", "barrier",
           "bar_arrive", "mbarrier_wait", "mbarrier_other", "control", "predicated_off", "other")
_BY_BASE = {
    "HGMMA": "hgmma", "WARPGROUP": "warpgroup", "SHFL": "shuffle",
    **dict.fromkeys(("FFMA", "FADD", "FMUL", "FMNMX", "FMNMX3", "FCHK", "FSWZADD", "FSET", "FFMA32I", "FADD32I",
                     "FMUL32I"), "fp32"),
    **dict.fromkeys(("HFMA2", "HADD2", "HMUL2", "HMNMX2", "HSET2"), "fp16x2"),
    **dict.fromkeys(("DFMA", "DADD", "DMUL", "DMNMX", "DSET"), "fp64"),
    **dict.fromkeys(("F2F", "F2FP", "F2I", "I2F", "I2FP", "F2IP", "I2I", "I2IP", "FRND", "UF2FP", "UI2F", "UF2F"),
                    "conversion"),
    **dict.fromkeys(("ISETP", "FSETP", "HSETP2", "DSETP", "PSETP", "PLOP3", "SEL", "FSEL", "UISETP", "USEL",
                     "UPLOP3", "UPSETP", "UFSETP", "UFSEL"), "predicate"),
    **dict.fromkeys(("LDC", "ULDC"), "constant"),
    **dict.fromkeys(("LDS", "LDSM"), "smem_load"),
    **dict.fromkeys(("STS", "STSM"), "smem_store"),
    **dict.fromkeys(("LDG", "STG", "LDGSTS", "LDGDEPBAR", "DEPBAR", "ATOMG", "RED", "REDG", "LD", "ST", "LDL",
                     "STL"), "global"),
    **dict.fromkeys(("UTMALDG", "UTMASTG", "UTMAPF", "UTMAREDG", "UBLKCP", "UBLKRED", "UBLKPF", "UTMACCTL",
                     "UTMACMDFLUSH"), "tma"),
    **dict.fromkeys(("BRA", "BRX", "JMP", "JMX", "EXIT", "RET", "CALL", "WARPSYNC", "BSSY", "BSYNC", "NOP",
                     "YIELD", "KILL", "BPT", "NANOSLEEP"), "control"),
    **dict.fromkeys(("IMAD", "IADD3", "IADD", "LOP3", "LOP", "SHF", "SHL", "SHR", "LEA", "MOV", "PRMT", "IABS",
                     "IMNMX", "VIADD", "VIMNMX", "VIADDMNMX", "POPC", "FLO", "BREV", "BMSK", "SGXT", "S2R", "CS2R",
                     "P2R", "R2P", "VOTE", "ISCADD", "IDP", "IDP4A", "MATCH", "REDUX", "BMOV", "ELECT"), "integer"),
}
_UNIFORM = ("R2UR", "S2UR", "VOTEU", "UP2UR", "UR2UP", "UCLEA")  # besides U + an integer opcode (UMOV, UIADD3, ...)


def classify(inst: SassInstruction) -> str:
    """The pipe class (CLASSES) of one instruction."""
    op, base = inst.opcode, inst.base
    if inst.guard == "!PT":
        return "predicated_off"
    if base == "MUFU":
        return "mufu_ex2" if op.startswith("MUFU.EX2") else "mufu_other"
    if base == "BAR":
        return "bar_arrive" if op.startswith("BAR.ARV") else "barrier"
    if base == "SYNCS":
        return "mbarrier_wait" if op.startswith("SYNCS.PHASECHK") else "mbarrier_other"
    if base in _BY_BASE:
        return _BY_BASE[base]
    if base in _UNIFORM or (base[:1] == "U" and _BY_BASE.get(base[1:]) == "integer"):
        return "uniform"
    return "other"


# ---- registers --------------------------------------------------------------------------------------------------
_REG = re.compile(r"\b(U?R|U?P)(\d+)\b(\.64)?")
_HGMMA = re.compile(r"HGMMA\.(\d+)x(\d+)x(\d+)\.(F32|F16)")
_ELEMENT_BYTES = {"BF16": 2, "F16": 2, "TF32": 4, "E4M3": 1, "E5M2": 1, "S8": 1, "U8": 1}
_COMPARES = ("ISETP", "FSETP", "HSETP2", "DSETP", "PSETP", "PLOP3", "UISETP", "UPLOP3", "UPSETP", "UFSETP")
_CARRIES = {"IADD3": 2, "UIADD3": 2, "LEA": 1, "ULEA": 1, "IADD": 1, "VOTE": 1, "ELECT": 1}  # (Rd, Pd..., ...)
_PRED_THEN_REG = ("LOP3", "ULOP3", "SHFL")  # (Pd, Rd, ...)
_NO_WRITE = ("BRA", "BRX", "JMP", "JMX", "RET", "CALL", "WARPSYNC", "BAR", "NANOSLEEP", "BSSY", "BSYNC")
_STORES = ("STG", "STS", "STL", "ST", "STSM", "RED", "REDG")
_DEST = re.compile(r"U?(?:R|P)(?:\d+|Z|T|R)$")  # a register or predicate operand, RZ / PT / PR included


def _is_pred(op: str) -> bool:
    return re.fullmatch(r"U?P(?:\d|T)", op) is not None


def _width(inst: SassInstruction) -> int:
    """Registers of the vector or 64-bit value an instruction writes (a store: stores)."""
    mods = inst.opcode.split(".")[1:]
    if inst.base in ("LDSM", "STSM"):  # .M88.4: four 8x8 matrices, a register each
        return int(mods[-1]) if mods and mods[-1] in ("2", "4") else 1
    if "128" in mods:
        return 4
    if "64" in mods or "WIDE" in mods:
        return 2
    if inst.base == "CS2R":
        return 1 if "32" in mods else 2
    return 1


def _regs(operand: str, count: int = 1) -> list[str]:
    """The registers an operand names (RZ, URZ, PT, UPT name none): `count` from an R or UR, two for `R2.64` and
    `desc[URx]`, the seven predicates for PR."""
    if operand.lstrip("!") in ("PR", "UPR"):  # the predicate register file as one value (P2R, R2P)
        return [f"{operand.lstrip('!')[:-1]}{j}" for j in range(7)]
    out = []
    for m in _REG.finditer(operand):
        kind, n = m.group(1), int(m.group(2))
        desc = kind == "UR" and operand[max(0, m.start() - 5):m.start()] == "desc["
        k = 2 if m.group(3) or desc else count
        out += [f"{kind}{n + j}" for j in range(k if kind in ("R", "UR") else 1)]
    return out


def _dest_count(inst: SassInstruction) -> int:
    """How many leading operands an instruction writes."""
    ops, base = inst.operands, inst.base
    if not ops or base in _NO_WRITE or base in _STORES or not _DEST.match(ops[0]):
        return 0
    if base in _COMPARES:
        return min(2, len(ops))
    if _is_pred(ops[0]):
        return 2 if base in _PRED_THEN_REG and len(ops) > 1 and re.match(r"U?R(?:\d+|Z)$", ops[1]) else 1
    n, extra = 1, _CARRIES.get(base, 0)
    while extra and n < len(ops) and _is_pred(ops[n]):
        n, extra = n + 1, extra - 1
    return n


def hgmma_shape(inst: SassInstruction) -> tuple[int, int, int, str]:
    m, n, k, acc = _HGMMA.match(inst.opcode).groups()
    return int(m), int(n), int(k), acc


def a_in_registers(inst: SassInstruction) -> bool:
    """An RS HGMMA (A from registers: `HGMMA... R120, R152, gdesc[..]`), not SS (`R24, gdesc[..]`)."""
    return len(inst.operands) > 1 and re.fullmatch(r"R\d+", inst.operands[1]) is not None


def element_bytes(inst: SassInstruction) -> int:
    for mod in inst.opcode.split(".")[2:]:
        if mod in _ELEMENT_BYTES:
            return _ELEMENT_BYTES[mod]
    return 2  # no input type named: f16


def _hgmma_rw(inst: SassInstruction, read: list) -> tuple[list, list]:
    m, n, k, acc = hgmma_shape(inst)
    ops, rs = inst.operands, a_in_registers(inst)
    d0 = int(ops[0][1:])
    accumulator = [f"R{d0 + j}" for j in range(m * n * (4 if acc == "F32" else 2) // (128 * 4))]
    if rs:  # A: m x k elements over the warp group's 128 threads
        read += [f"R{int(ops[1][1:]) + j}" for j in range(m * k * element_bytes(inst) // (128 * 4))]
    desc = int(re.match(r"gdesc\[UR(\d+)\]", ops[1 + rs]).group(1))
    read += [f"UR{desc + j}" for j in (range(2, 4) if rs else range(4))]
    if len(ops) > 2 + rs and ops[2 + rs] != "RZ":
        read += accumulator  # it accumulates (RZ: a fresh accumulator)
    read += [r for op in ops[3 + rs:] for r in _regs(op)]  # a scale-d predicate (UPT names none; gsb0 neither)
    return accumulator, read


def operands_rw(inst: SassInstruction) -> tuple[list[str], list[str]]:
    """(registers written, registers read) of one instruction; the guard predicate is read."""
    read = _regs(inst.guard) if inst.guard else []
    if inst.base == "HGMMA":
        return _hgmma_rw(inst, read)
    ops, mods = inst.operands, inst.opcode.split(".")[1:]
    n_dest, width = _dest_count(inst), _width(inst)
    written = [r for j, op in enumerate(ops[:n_dest]) for r in _regs(op, width if j == 0 else 1)]
    for j, op in enumerate(ops[n_dest:], start=n_dest):
        if op.startswith(("[", "desc[")):
            count = 1  # an address: `.64` and desc[] say themselves what they name
        elif inst.base in _STORES or inst.base == "SYNCS":
            count = width  # the data stored (STS.128 [..], R4: R4..R7; SYNCS.EXCH.64 URZ, [..], UR10: UR10, UR11)
        elif "WIDE" in mods and j == 3:
            count = 2  # IMAD.WIDE's 64-bit addend
        else:
            count = 2 if "64" in mods else 1
        read += _regs(op, count)
    return written, read


def smem_bytes(inst: SassInstruction) -> int:
    """Bytes one thread moves with a shared-memory load or store (ldmatrix / stmatrix: 4 per 8x8 matrix)."""
    mods = inst.opcode.split(".")[1:]
    if inst.base in ("LDSM", "STSM"):
        return 4 * _width(inst)
    for mod, size in (("128", 16), ("64", 8), ("U16", 2), ("S16", 2), ("U8", 1), ("S8", 1)):
        if mod in mods:
            return size
    return 4


def wgmma_smem_bytes(inst: SassInstruction) -> int:
    """Bytes one HGMMA reads from shared memory: B (k x n) always, A (m x k) when it is a descriptor (SS)."""
    m, n, k, _ = hgmma_shape(inst)
    elt = element_bytes(inst)
    return k * n * elt + (0 if a_in_registers(inst) else m * k * elt)


def closes_group(inst: SassInstruction) -> bool:
    return inst.base == "HGMMA" and "gsb0" in inst.operands


def wait_n(inst: SassInstruction) -> int:
    """N of `WARPGROUP.DEPBAR.LE gsb0, N`: groups left in flight."""
    return int(inst.operands[-1], 0)
