"""The SASS instruction mix (perfmodel/model/sass_mix.py, reading collectors/census/sass_disasm.py, sass_loops.py and
sass_ops.py): each stage compiled for sm_90 on this GPU-less machine, its
cubin disassembled with the nvdisasm Triton ships, and its math loops read from the SASS that runs.

Every stage is compiled at the seed config (B16 H16 S2048 D64 causal fp16), as tests/test_census.py compiles it.
What is checked:

- stage 0 (tl): one math loop, holding HGMMA and MUFU.EX2; its size against the issue's figure (issue 25: "stage 0's
  SASS loop 887 instructions, PTX 780"): 888 instructions from the loop's label through its back-edge branch, 887
  before that branch; the PTX's 780 include the PTX loop's own `bra`, so the like-for-like pair is 888 and 780;
- stage 4 (Gluon): its two consumer partitions' loops are found and each is matched to its own PTX loop;
- every stage: what maps one to one agrees between PTX and SASS (wgmma and HGMMA with their shapes, FLOPs and
  operand bytes; wgmma groups and the HGMMAs that close one; wgmma.wait_group and WARPGROUP.DEPBAR; ex2 and
  MUFU.EX2; bar.sync and BAR.SYNC; mbarrier waits and arrives), the classes partition the loop, and the replay
  (perfmodel/model/critical_path.py) runs on the SASS nodes with the PTX's wgmma groups;
- the text read is the SASS Triton itself disassembles (`compiled.asm["sass"]`, cuobjdump through
  triton/tools/disasm.py), control words included; its PTX lines are lines of `compiled.asm["ptx"]`; the registers
  each instruction reads and writes agree with the scoreboard waits and stall counts ptxas scheduled;
- the fallback: nvdisasm missing, nvdisasm failing on a cubin, text that is not nvdisasm's, SASS loops that do not
  match the PTX's, no line info to match two loops by: the result says "ptx (<reason>)" and carries the PTX mix.
"""

from __future__ import annotations

import math
import re
import types

import pytest

from collectors.census import ptx as census_ptx, sass_disasm, sass_loops, sass_ops, sm90
from kernels.suites import SEED
from perfmodel.model import critical_path, instruction_mix, sass_mix

STAGES = ["stage0_baseline", "stage1_warpspec", "stage2_reduced_sync", "stage3_persistent", "stage4_overlap",
          "stage5_full"]


@pytest.fixture(scope="module")
def compiled():
    """Each stage compiled for sm_90 at the seed config."""
    return {impl: sass_mix.compile_stage(impl, SEED) for impl in STAGES}


@pytest.fixture(scope="module")
def mixes(compiled):
    return {impl: sass_mix.kernel_sass_mix(c) for impl, c in compiled.items()}


def _ptx_math(c) -> tuple[list, list]:
    """(census loops, LoopMix) of the PTX math loops of a compiled kernel, as instruction_mix reads them."""
    ptx = c.asm["ptx"]
    loops = census_ptx.math_loops(census_ptx.ptx_loops(ptx))
    return loops, [instruction_mix.loop_mix(ptx.splitlines(), lp, c.metadata.name) for lp in loops]


def _ptx_body(c, loop: dict) -> list[str]:
    lines = c.asm["ptx"].splitlines()
    return census_ptx.instruction_lines([ln for a, b in loop["ranges"] for ln in lines[a:b]])


# ---- stage 0 and stage 4 --------------------------------------------------------------------------------------

def test_stage0_math_loop_holds_hgmma_and_ex2_and_the_issues_instruction_count(compiled, mixes):
    mix = mixes["stage0_baseline"]
    assert mix.source == "sass"
    (loop,) = mix.sass_loops
    assert loop.classes["hgmma"] == loop.mix.wgmma > 0
    assert loop.classes["mufu_ex2"] == loop.mix.ex2 > 0
    # The issue's 887 is the loop without its back-edge branch: the body runs from the header label to a BRA back
    # to it, and the instructions before that BRA span 887 slots of 16 bytes. (What Triton 3.6.0 and ptxas make of
    # today's stage 0: a change to either moves these counts, and the issue's, alike.)
    text = sass_disasm.disassemble(compiled["stage0_baseline"].asm["cubin"])
    insts, labels = sass_disasm.parse_nvdisasm(text)
    (sass_loop,) = census_ptx.math_loops(sass_loops.sass_loops(insts, labels))
    body = sass_loops.loop_body(insts, sass_loop)
    back = body[-1]
    assert back.base == "BRA" and back.targets == (loop.label,)
    assert (back.address - loop.first_address) // sass_disasm.INSTRUCTION_BYTES == 887
    assert loop.instructions == len(body) == 888
    # ... where the PTX count (780) holds the PTX loop's own branch back
    (ptx_loop,), (ptx_mix,) = _ptx_math(compiled["stage0_baseline"])
    assert ptx_mix.instructions == 780
    assert re.match(r"bra(?:\.uni)?\s+" + re.escape(ptx_loop["label"]), _ptx_body(compiled["stage0_baseline"],
                                                                                   ptx_loop)[-1])


def test_stage4_finds_both_consumer_loops_each_matched_to_its_ptx_loop(compiled, mixes):
    mix = mixes["stage4_overlap"]
    ptx_loops, _ = _ptx_math(compiled["stage4_overlap"])
    assert mix.source == "sass" and len(ptx_loops) == 2
    assert len(mix.sass_loops) == 2 and len({lp.label for lp in mix.sass_loops}) == 2
    # in PTX order, each matched by the PTX lines of its HGMMAs, nearly all its instructions from inside that loop
    assert [lp.ptx_label for lp in mix.sass_loops] == [lp["label"] for lp in ptx_loops]
    for loop in mix.sass_loops:
        assert loop.match == "ptx lines" and loop.ptx_line_share > 0.95
        assert loop.classes["hgmma"] and loop.classes["mufu_ex2"] and loop.classes["mbarrier_wait"]
        assert loop.spin_retry_instructions > 0  # the waits' out-of-line retries, not counted


# ---- every stage ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("impl", STAGES)
def test_one_to_one_instructions_agree_between_ptx_and_sass(compiled, mixes, impl):
    mix = mixes[impl]
    ptx_loops, ptx_mixes = _ptx_math(compiled[impl])
    assert mix.source == "sass", mix.source
    assert len(mix.math_loops) == len(ptx_mixes)
    for sass, ptx, ptx_loop in zip(mix.math_loops, ptx_mixes, ptx_loops):
        for name in ("wgmma", "wgmma_shapes", "wgmma_flops", "wgmma_smem_bytes", "overlap_flops", "ex2",
                     "bar_sync", "bar_threads", "mbarrier_wait", "mbarrier_arrive"):
            assert getattr(sass, name) == getattr(ptx, name), name
        # the same waits (a SASS loop may start at another point of the same cycle)
        assert sorted(sass.wgmma_waits) == sorted(ptx.wgmma_waits)
        commits = sum(inst.startswith("wgmma.commit_group") for inst in _ptx_body(compiled[impl], ptx_loop))
        assert sum(n[0] == critical_path.COMMIT for n in sass.path) == commits
        assert sorted(critical_path.wgmma_groups(sass.path)) == sorted(critical_path.wgmma_groups(ptx.path))


@pytest.mark.parametrize("impl", STAGES)
def test_classes_partition_each_loop(mixes, impl):
    for loop in mixes[impl].sass_loops:
        assert sum(loop.classes.values()) == loop.instructions == loop.mix.instructions
        assert set(loop.classes) == set(sass_ops.CLASSES)
        assert loop.classes["other"] == 0, loop.opcodes  # every opcode of a math loop has its pipe
        fields = ("wgmma", "ex2", "fp", "cvt", "predicate", "int_alu", "shfl", "smem_loads", "smem_stores",
                  "global_mem", "bar_sync", "mbarrier_wait", "mbarrier_arrive")
        unclassed = loop.instructions - sum(getattr(loop.mix, f) for f in fields)
        assert unclassed == loop.classes["warpgroup"]  # as wgmma.fence / commit / wait count in no PTX class
        assert len(loop.mix.path) == loop.instructions + sum(n[0] == critical_path.COMMIT for n in loop.mix.path)


def test_replay_runs_on_the_sass_nodes(mixes):
    # round latencies, as tests/test_critical_path.py uses: only that the replay reads these nodes is checked here
    ns = 1e-9
    lat = critical_path.Latencies(clock_hz=1e9, alu_s=4 * ns, ex2_s=20 * ns, xbar_s=30 * ns, bar_sync_s=15 * ns,
                                  mbarrier_wait_s=10 * ns, mufu_clocks=8, smem_bytes_per_clock=32,
                                  wgmma_group_s=lambda kind, n, k, flops: (200 * ns, 100 * ns))
    for impl in ("stage0_baseline", "stage4_overlap"):
        for loop in mixes[impl].math_loops:
            seconds = critical_path.iteration_seconds(loop.path, lat)
            # at least one issue clock per instruction, and finite
            assert math.isfinite(seconds) and seconds >= loop.instructions * ns


def test_the_sass_read_is_tritons_own_disassembly(compiled):
    """nvdisasm's text as parsed here against triton/tools/disasm.py's reading of cuobjdump -sass: the same
    instructions (branch targets aside: labels there, LBB names here) and the same control words."""
    c = compiled["stage4_overlap"]
    insts, _ = sass_disasm.parse_nvdisasm(sass_disasm.disassemble(c.asm["cubin"]))
    rows = [line.split("\t", 1) for line in c.asm["sass"].splitlines() if "\t" in line]
    assert len(rows) == len(insts)

    def norm(text: str) -> str:
        return re.sub(r"\s*,\s*", ", ", re.sub(r"\s+", " ", text.replace(".reuse", ""))).strip().rstrip(";").strip()

    for inst, (ctrl, asm) in zip(insts, rows):
        mine = (f"{inst.wait_mask:02d}" if inst.wait_mask else "--") + \
            f":{'-' if inst.read_sb is None else inst.read_sb}:{'-' if inst.write_sb is None else inst.write_sb}" \
            f":{'Y' if inst.yield_bit == 0 else '-'}:{inst.stall:x}"
        assert ctrl == mine, inst.text
        if inst.base in ("BRA", "BRX"):
            assert norm(asm).split()[: 2 if inst.guard else 1] == inst.text.split()[: 2 if inst.guard else 1]
        else:
            assert norm(asm) == norm(inst.text)


@pytest.mark.parametrize("impl", ["stage0_baseline", "stage1_warpspec", "stage4_overlap"])
def test_register_dependencies_agree_with_the_compilers_own_schedule(compiled, impl):
    """The registers each instruction reads and writes (the replay's dependencies), checked against what ptxas wrote
    in the control words, over every basic block of the kernel: a read of what a variable-latency instruction
    (one that releases a scoreboard) wrote is preceded by a wait on that scoreboard, and a read of what a
    fixed-latency instruction wrote to a vector register comes at least 4 stall cycles after it (Hopper's fixed
    ALU latency; uniform registers, UR and UP, are ready sooner, and a read of PR, the whole predicate file, is not
    a real read of each predicate)."""
    c = compiled[impl]
    insts, labels = sass_disasm.parse_nvdisasm(sass_disasm.disassemble(c.asm["cubin"]))
    ranges, _, _ = sass_loops.basic_blocks(insts, labels)
    scoreboarded = fixed = 0
    for a, e in ranges:
        last: dict[str, int] = {}
        for i in range(a, e):
            inst = insts[i]
            if sass_ops.classify(inst) == "predicated_off":
                continue
            written, read = sass_ops.operands_rw(inst)
            pr = "PR" in inst.operands
            for reg in set(read):
                if reg not in last:
                    continue
                j = last[reg]
                producer = insts[j]
                if producer.write_sb is not None:
                    assert any(insts[k].wait_mask >> producer.write_sb & 1 for k in range(j + 1, i + 1)), \
                        (producer.text, inst.text, reg)
                    scoreboarded += 1
                elif not reg.startswith("U") and not pr:
                    assert sum(insts[k].stall for k in range(j, i)) >= 4, (producer.text, inst.text, reg)
                    fixed += 1
            if inst.base != "HGMMA":  # an accumulator is waited for through WARPGROUP.DEPBAR, not a scoreboard
                last.update(dict.fromkeys(written, i))
    assert scoreboarded > 100 and fixed > 1000


@pytest.mark.parametrize("impl", ["stage0_baseline", "stage4_overlap"])
def test_the_ptx_lines_are_lines_of_the_compiled_ptx(compiled, impl):
    """nvdisasm -gp's line N is line N (1-based) of compiled.asm["ptx"]: every instruction that maps one to one
    comes from its PTX instruction's line (an HGMMA is not among them: its wgmma is inline asm, without a line)."""
    c = compiled[impl]
    ptx = c.asm["ptx"].splitlines()
    insts, _ = sass_disasm.parse_nvdisasm(sass_disasm.disassemble(c.asm["cubin"]))
    pairs = {"MUFU.EX2": "ex2.approx", "SHFL.BFLY": "shfl.sync", "WARPGROUP.ARRIVE": "wgmma.fence",
             "WARPGROUP.DEPBAR": "wgmma.wait_group"}
    seen = dict.fromkeys(pairs, 0)
    for inst in insts:
        for sass_op, ptx_op in pairs.items():
            if inst.opcode.startswith(sass_op):
                assert ptx[inst.ptx_line - 1].split()[0].startswith(ptx_op), (inst.text, ptx[inst.ptx_line - 1])
                seen[sass_op] += 1
    assert all(seen.values()), seen


# ---- the fallback -----------------------------------------------------------------------------------------------

def _stand_in(c, cubin: bytes, hash_: str):
    """A compiled kernel's stand-in: its real PTX and name, another cubin."""
    return types.SimpleNamespace(hash=hash_, asm={"ptx": c.asm["ptx"], "cubin": cubin}, metadata=c.metadata)


def _is_ptx_mix(mix, c) -> bool:
    _, ptx_mixes = _ptx_math(c)
    return [m.as_dict() for m in mix.math_loops] == [m.as_dict() for m in ptx_mixes] and not mix.sass_loops


def test_without_nvdisasm_the_ptx_mix_is_kept_and_says_why(compiled, monkeypatch):
    def no_tool(name):
        raise RuntimeError(f"Cannot find {name}")  # what Triton's knob raises when neither path has the tool

    monkeypatch.setattr(sm90, "nvidia_tool", no_tool)
    monkeypatch.setattr(sass_mix, "_SASS_MIX", {})
    c = compiled["stage0_baseline"]
    mix = sass_mix.kernel_sass_mix(c)
    assert mix.source == "ptx (nvdisasm not found: Cannot find nvdisasm.)"
    assert not mix.from_sass and _is_ptx_mix(mix, c)


def test_a_cubin_nvdisasm_refuses_keeps_the_ptx_mix(compiled, monkeypatch):
    monkeypatch.setattr(sass_mix, "_SASS_MIX", {})
    c = compiled["stage4_overlap"]
    cubin = c.asm["cubin"]
    mix = sass_mix.kernel_sass_mix(_stand_in(c, cubin[: len(cubin) // 3], "truncated"))
    assert mix.source.startswith("ptx (nvdisasm exited ") and mix.source.endswith(".)")
    assert _is_ptx_mix(mix, c)
    empty = sass_mix.kernel_sass_mix(_stand_in(c, b"", "empty"))
    assert empty.source == "ptx (the compiled kernel has no cubin.)" and _is_ptx_mix(empty, c)


def test_text_that_is_not_nvdisasms_keeps_the_ptx_mix(compiled):
    c = compiled["stage0_baseline"]
    mix = sass_mix.sass_mix_of(c.asm["ptx"], "no disassembly here\n", c.metadata.name)
    assert mix.source == "ptx (nvdisasm output not understood: it holds no instruction.)" and _is_ptx_mix(mix, c)
    # a line the parser would miss shows as a gap in the addresses
    text = sass_disasm.disassemble(c.asm["cubin"])
    lines = text.splitlines()
    first = next(i for i, ln in enumerate(lines) if re.match(r"^\s*/\*0010\*/", ln))
    cut = "\n".join(lines[:first] + lines[first + 2:])
    gap = sass_mix.sass_mix_of(c.asm["ptx"], cut, c.metadata.name)
    assert gap.source.startswith("ptx (nvdisasm output not understood: _attn_fwd jumps from address 0x10")


def test_sass_loops_that_do_not_match_the_ptx_keep_the_ptx_mix(compiled):
    # stage 4's PTX (two math loops) against stage 0's SASS (one)
    text = sass_disasm.disassemble(compiled["stage0_baseline"].asm["cubin"])
    c = compiled["stage4_overlap"]
    mix = sass_mix.sass_mix_of(c.asm["ptx"], text, c.metadata.name)
    assert mix.source == "ptx (the SASS has 1 math loop where the PTX has 2.)" and _is_ptx_mix(mix, c)


def _without_line_info(text: str) -> str:
    return "\n".join(ln for ln in text.splitlines() if not ln.lstrip().startswith("//##"))


def test_without_line_info_only_a_single_math_loop_is_matched(compiled, mixes):
    c = compiled["stage0_baseline"]
    mix = sass_mix.sass_mix_of(c.asm["ptx"], _without_line_info(sass_disasm.disassemble(c.asm["cubin"])),
                               c.metadata.name)
    assert mix.source == "sass"
    (loop,), (with_lines,) = mix.sass_loops, mixes["stage0_baseline"].sass_loops
    assert loop.match == "only loop" and loop.ptx_line_share is None
    assert (loop.label, loop.ptx_label, loop.mix.as_dict()) == (with_lines.label, with_lines.ptx_label,
                                                                with_lines.mix.as_dict())
    # two consumer loops: ptxas lays them out in the other order than the PTX (the lines say so), so without
    # lines the PTX mix is kept
    c = compiled["stage4_overlap"]
    by_address = sorted(mixes["stage4_overlap"].sass_loops, key=lambda lp: lp.first_address)
    ptx_loops, _ = _ptx_math(c)
    assert [lp.ptx_label for lp in by_address] != [lp["label"] for lp in ptx_loops]
    mix = sass_mix.sass_mix_of(c.asm["ptx"], _without_line_info(sass_disasm.disassemble(c.asm["cubin"])),
                               c.metadata.name)
    assert mix.source == ("ptx (the cubin has no PTX line info (TRITON_DISABLE_LINE_INFO set?) to tell which of "
                          "its 2 SASS math loops is which PTX loop.)") and _is_ptx_mix(mix, c)
