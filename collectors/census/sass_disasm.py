"""The SASS of a compiled kernel's cubin, as nvdisasm prints it, read into instructions (CPU only).

Triton's compiled kernel (`compiled.asm["cubin"]`, collectors/census/sm90.py `compile_launch`, no GPU needed) holds
the sm_90 machine code ptxas made from the PTX. `disassemble` runs `nvdisasm -c -gp -hex` on it, the copy Triton
resolves (collectors.census.sm90.nvidia_tool: TRITON_NVDISASM_PATH, else the one in Triton's wheel,
triton/backends/nvidia/bin); `parse_nvdisasm` reads the text into `SassInstruction`s. nvdisasm rather than `cuobjdump
-sass` (the same instruction text; Triton's own `compiled.asm["sass"]` is cuobjdump's) because it names branch targets
by label (`BRA `(.L_x_1)`, `BRX ... BRANCH_TARGETS ...`) and, with -gp, gives the PTX line each SASS instruction comes
from: line N of `compiled.asm["ptx"]`, from the `.nv_debug_line_sass` section ptxas writes under the -lineinfo
Triton passes it unless TRITON_DISABLE_LINE_INFO is set. -hex adds each instruction's control word (stall cycles,
yield, the scoreboards it sets and waits on), decoded as triton/tools/disasm.py decodes cuobjdump's.

Each line of SASS is one instruction issued: sm_90 does not dual-issue (nvdisasm's -novliw, which would split
paired instructions, changes nothing in these cubins), and `.reuse` on an operand is an operand-reuse-cache hint,
not an instruction (it is stripped from the operands; `reuse_mask` keeps the flags). A predicated instruction
(`@P0 ...`, `@!UP1 ...`) keeps its guard in `guard`.

What cannot be read raises `SassUnavailable`, whose message is the reason in one sentence (nvdisasm missing or
failing, text that is not its output).
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from collectors.census import sm90 as _sm90

NVDISASM_ARGS = ("-c", "-gp", "-hex")  # code only; the PTX line of each instruction; the encodings (control words)
NVDISASM_TIMEOUT_S = 120  # a 250 KB cubin disassembles in well under a second

# ---- reading nvdisasm's text -----------------------------------------------------------------------------------
_SECTION = re.compile(r"^//-+\s+\.text\.(\S+)")
_LABEL = re.compile(r"^\s*(\.L_x_\d+):\s*$")
_PTX_LINE = re.compile(r'^\s*//## File "\.nv_debug_ptx_txt", line (\d+)')
_INSTRUCTION = re.compile(r"^\s*/\*([0-9a-f]{4,})\*/\s+(.*?)\s*;?\s*/\* 0x([0-9a-f]{16}) \*/\s*$")
_ENCODING_HIGH = re.compile(r"^\s*/\* 0x([0-9a-f]{16}) \*/\s*$")
_GUARD = re.compile(r"^@(!?U?P(?:\d|T))\s+")
_TARGET = re.compile(r"`\((\.L_x_\d+)\)")
_BRX_TARGETS = re.compile(r'\(\*"BRANCH_TARGETS ([^"]*)"\*\)')
INSTRUCTION_BYTES = 16  # every sm_90 instruction is 128 bits


@dataclass(frozen=True)
class SassInstruction:
    """One SASS instruction as nvdisasm prints it, its control word decoded (Triton's tools/disasm.py parseCtrl)."""

    function: str
    address: int
    guard: str  # the predicate guard without '@' ('P0', '!UP1', '!PT'), or ''
    opcode: str  # with its modifiers: 'HGMMA.64x64x16.F32', 'MUFU.EX2'
    operands: tuple  # as printed, '.reuse' stripped
    ptx_line: int | None  # 1-based line of the PTX it was compiled from (nvdisasm -gp), None without line info
    targets: tuple  # labels a branch may go to (BRA, BRX)
    stall: int  # stall cycles before the warp's next instruction issues
    yield_bit: int
    write_sb: int | None  # scoreboard released when its result is written (None: none)
    read_sb: int | None  # scoreboard released when its operands have been read
    wait_mask: int  # scoreboards waited on before issue (bit n: SBn)
    reuse_mask: int  # operand-reuse cache flags

    @property
    def base(self) -> str:
        return self.opcode.split(".", 1)[0]

    @property
    def text(self) -> str:
        guard = f"@{self.guard} " if self.guard else ""
        return f"{guard}{self.opcode} {', '.join(self.operands)}".rstrip()


class SassUnavailable(RuntimeError):
    """No SASS could be read for a kernel; the message is the reason, in one sentence."""


def _split_operands(text: str) -> tuple:
    """Operands split at top-level commas (not inside [...] or (...)), '.reuse' stripped."""
    out, depth, cur = [], 0, []
    for ch in text:
        depth += (ch in "[(") - (ch in "])")
        if ch == "," and depth == 0:
            out.append("".join(cur).strip())
            cur = []
        else:
            cur.append(ch)
    if "".join(cur).strip():
        out.append("".join(cur).strip())
    return tuple(op.replace(".reuse", "") for op in out)


def _control(high: int) -> dict:
    """The control bits of an instruction's high 64-bit word (bits 105-125 of the 128: Volta's layout, which
    Hopper keeps; decoded as triton/tools/disasm.py decodes cuobjdump's)."""
    write_sb, read_sb = (high >> 46) & 0x7, (high >> 49) & 0x7
    return {"stall": (high >> 41) & 0xF, "yield_bit": (high >> 45) & 0x1,
            "write_sb": None if write_sb == 7 else write_sb, "read_sb": None if read_sb == 7 else read_sb,
            "wait_mask": (high >> 52) & 0x3F, "reuse_mask": (high >> 58) & 0xF}


def _instruction(function: str, match: re.Match, high: str, ptx_line: int | None) -> SassInstruction:
    body = match.group(2).strip().rstrip(";").strip()
    g = _GUARD.match(body)
    body = body[g.end():] if g else body
    opcode, _, rest = body.partition(" ")
    targets = tuple(_TARGET.findall(rest))
    brx = _BRX_TARGETS.search(rest)
    if brx:
        targets, rest = tuple(t.strip() for t in brx.group(1).split(",")), rest[:brx.start()]
    return SassInstruction(function=function, address=int(match.group(1), 16), guard=g.group(1) if g else "",
                           opcode=opcode, operands=_split_operands(rest.strip()), ptx_line=ptx_line,
                           targets=targets, **_control(int(high, 16)))


def parse_nvdisasm(text: str) -> tuple[tuple, dict]:
    """(instructions, labels) of `nvdisasm -c [-gp] -hex` text: every instruction of every function in address
    order, and label -> (function, index of the instruction it names). Raises SassUnavailable when the text is
    not that (no instruction, an encoding word missing, addresses with a gap: an instruction the parser missed)."""
    lines = text.splitlines()
    insts: list[SassInstruction] = []
    labels: dict[str, tuple] = {}
    function, ptx_line, pending = "", None, []
    for i, line in enumerate(lines):
        if m := _SECTION.match(line):
            function, ptx_line, pending = m.group(1), None, []
        elif m := _LABEL.match(line):
            pending.append(m.group(1))
        elif m := _PTX_LINE.match(line):
            ptx_line = int(m.group(1))
        elif m := _INSTRUCTION.match(line):
            high = _ENCODING_HIGH.match(lines[i + 1]) if i + 1 < len(lines) else None
            if high is None:
                raise SassUnavailable(f"nvdisasm output not understood: no second encoding word after "
                                      f"{m.group(2).strip()!r} (it was run without -hex?).")
            inst = _instruction(function, m, high.group(1), ptx_line)
            prev = insts[-1] if insts and insts[-1].function == function else None
            expected = prev.address + INSTRUCTION_BYTES if prev else 0
            if inst.address != expected:
                raise SassUnavailable(f"nvdisasm output not understood: {function} jumps from address "
                                      f"{expected:#x} to {inst.address:#x}.")
            labels.update((label, (function, len(insts))) for label in pending)
            pending = []
            insts.append(inst)
    if not insts:
        raise SassUnavailable("nvdisasm output not understood: it holds no instruction.")
    return tuple(insts), labels


def _nvdisasm() -> str:
    try:
        return _sm90.nvidia_tool("nvdisasm")
    except (FileNotFoundError, RuntimeError, AttributeError) as exc:  # Triton's knob: RuntimeError "Cannot find"
        raise SassUnavailable(f"nvdisasm not found: {str(exc).rstrip('.')}.") from None


def disassemble(cubin: bytes) -> str:
    """`nvdisasm -c -gp -hex` of a cubin (the copy Triton resolves); raises SassUnavailable with the reason."""
    if not cubin:
        raise SassUnavailable("the compiled kernel has no cubin.")
    tool = _nvdisasm()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "kernel.cubin"
        path.write_bytes(cubin)
        try:
            res = subprocess.run([tool, *NVDISASM_ARGS, str(path)], capture_output=True, text=True,
                                 timeout=NVDISASM_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise SassUnavailable(f"nvdisasm ran past {NVDISASM_TIMEOUT_S} s.") from None
        except OSError as exc:
            raise SassUnavailable(f"nvdisasm could not run: {exc.strerror or exc}.") from None
    if res.returncode != 0:
        detail = (res.stderr or res.stdout).replace(str(path), "the cubin").strip().splitlines()
        raise SassUnavailable(f"nvdisasm exited {res.returncode}"
                              + (f": {' '.join(detail[0].split())[:200].rstrip('.')}." if detail else "."))
    return res.stdout
