"""What the Gluon stages (1-5) share: layouts, the online-softmax step, the work-item schedule, the epilogue and
the host side (TMA descriptors, the interpreter refusal, the launch).

Gluon (`triton.experimental.gluon`, Triton 3.6) exposes what Triton's `tl` front end decides for itself: shared
memory buffers, mbarriers, TMA copies, asynchronous wgmma (`warpgroup_mma(..., is_async=True)` +
`warpgroup_mma_wait`) and warp-specialized partitions with their own register budgets (`gl.warp_specialize`).
The stages use them as FlashAttention-3 does: a producer partition (one warp, few registers) fills a ring of K/V
slots through TMA; consumer warps run the two wgmmas and the online softmax, and hand each slot back through an
mbarrier when they are done with it.

Conventions in every stage kernel:
- Q, K, V are read through 4-D TMA descriptors over the [B, H, S, D] tensors with their real strides (so a
  transposed [B, S, H, D] view works); TMA zero-fills past S in every dimension, so a tile or key block that runs
  past the end of a head reads zeros, never the next head. O is written with masked pointer stores (rows < S).
- Scores are kept in the exp2 domain: qk_scale = sm_scale * log2(e) is folded into one FMA per score
  (`s * qk_scale - m`), and a masked score is -inf. The first key block of every query row holds key 0, which
  no mask removes, so every running max is finite after the first block and -inf never reaches an exp2 argument
  as -inf - (-inf).
- mbarrier parity: a fresh barrier counts as having completed phase 1, so a producer's first wait on an "empty"
  barrier passes at once (`phase ^ 1`) and a consumer's first wait on a "ready" barrier waits for the first fill.
- Proton scopes (`pl.enter_scope("<role>.<phase>")` / `pl.exit_scope`) mark each partition's phases for an
  intra-kernel timeline (collectors/timeline_capture.py): `<role>.tile` holds one work item, `kv_wait` (`k_wait`)
  opens a key-block iteration. They emit no code unless Proton's instrumentation mode is on.

Gluon has no interpreter: under TRITON_INTERPRET=1 a Gluon stage raises KernelUnsupported (NO_INTERPRETER). Its
correctness is checked on the GPU (GPU-marked tests, the correctness table of every run); the census compiles it
for sm_90 without a GPU.
"""

from __future__ import annotations

import torch
import triton.profiler.language as pl
from triton.experimental import gluon
from triton.experimental.gluon import language as gl
from triton.experimental.gluon.language.nvidia.hopper import tma
from triton.experimental.gluon.nvidia.hopper import TensorDescriptor

from .hardware import DEFAULT_GPU, GPUS
from ._launch import KernelUnsupported

LOG2E = 1.4426950408889634

GL_DTYPES = {torch.float16: gl.float16, torch.bfloat16: gl.bfloat16}
if hasattr(torch, "float8_e4m3fn"):
    GL_DTYPES[torch.float8_e4m3fn] = gl.float8e4nv

NO_INTERPRETER = ("{stage}: Gluon kernels cannot run under TRITON_INTERPRET=1 (Triton 3.6 has no Gluon "
                  "interpreter); this stage's correctness is checked on the GPU, and its census compiles for sm_90 "
                  "without one. No other stage was run in its place.")

def require_sm90(stage: str, device: torch.device) -> None:
    """Refuse a GPU that is not Hopper: the stages use wgmma, TMA and setmaxnreg, which exist on sm_90 only."""
    if device.type == "cuda":
        cc = torch.cuda.get_device_capability(device)
        if cc[0] != 9:
            raise KernelUnsupported(f"{stage}: this Gluon kernel needs a Hopper GPU (compute capability 9.x: wgmma, "
                                    f"TMA, setmaxnreg); {torch.cuda.get_device_name(device)} is {cc[0]}.{cc[1]}. "
                                    "No other stage was run in its place.")


# Registers of the producer partition (one warp issuing TMA copies and mbarrier waits): FA3's 24-32.
PRODUCER_REGS = 24
# Hopper's register file (kernels/hardware.py); setmaxnreg works per warp group (128 threads), in steps of 8.
SM90_REGISTERS = GPUS[DEFAULT_GPU].regs_per_sm


def kernel_maxnreg(total_warps: int) -> int:
    """The per-thread register limit to compile a warp-specialized kernel of `total_warps` warps (all partitions,
    rounded up to warp groups) with: the SM's register file split evenly, in setmaxnreg's steps of 8. Partitions
    then move registers between them (`worker_num_regs`); the default partition keeps what the workers leave."""
    groups = -(-total_warps // 4)
    return (SM90_REGISTERS // (groups * 128)) // 8 * 8


def descriptor(t: torch.Tensor, rows: int) -> TensorDescriptor:
    """A 4-D TMA descriptor over a [B, H, S, D] tensor (its own strides), one [1, 1, rows, D] block per copy."""
    D = t.shape[-1]
    block = [1, 1, rows, D]
    layout = gl.NVMMASharedLayout.get_default_for(block, GL_DTYPES[t.dtype])
    return TensorDescriptor(t, list(t.shape), list(t.stride()), block, layout)


# ---- 8-bit inputs ----------------------------------------------------------------------------------------------
# Hopper's wgmma takes 8-bit operands from shared memory only K-major (the reduction dimension contiguous). Q and
# K with their head dimension contiguous are (QKᵀ reduces over D); V is not (P·V reduces over the keys), so an
# 8-bit V is handed to the kernel transposed, [B, H, D, S] with S contiguous (`transposed_v`), and its blocks are
# loaded and read as [D, BLOCK_N] tiles (`load_v_block`, `v_operand`). 16-bit V is read as it is.


def transposed_v(v: torch.Tensor) -> torch.Tensor:
    """V as [B, H, D, S_pad] with S contiguous (S_pad: S rounded up to 16 elements, as TMA strides need 16-byte
    multiples). One extra pass over V, counted in the attention call's time. Columns past S are never read: the
    descriptor (`v_descriptor`) says S, and TMA zero-fills past it."""
    B, H, S, D = v.shape
    vt = torch.empty(B, H, D, -(-S // 16) * 16, dtype=v.dtype, device=v.device)
    vt[..., :S].copy_(v.transpose(-1, -2))
    return vt


def v_descriptor(vt: torch.Tensor, S: int, block_n: int) -> TensorDescriptor:
    """TMA descriptor over a `transposed_v` tensor: [B, H, D, S] logically, one [1, 1, D, block_n] block a copy."""
    B, H, D, _ = vt.shape
    block = [1, 1, D, block_n]
    layout = gl.NVMMASharedLayout.get_default_for(block, GL_DTYPES[vt.dtype])
    return TensorDescriptor(vt, [B, H, D, S], list(vt.stride()), block, layout)


# ---- device helpers --------------------------------------------------------------------------------------------
@gluon.constexpr_function
def mma_layout(num_warps, instr_n, bitwidth):
    """The wgmma accumulator layout of a [16 * num_warps, instr_n] tile: warps stacked along the rows (each warp
    group owns 64 rows), one instruction covering all instr_n columns, K step 256 bits."""
    return gl.NVMMADistributedLayout(version=[3, 0], warps_per_cta=[num_warps, 1],
                                     instr_shape=[16, instr_n, 256 // bitwidth])


@gluon.constexpr_function
def p_operand_layout(o_layout, bitwidth):
    """P's register layout as wgmma's A operand for P·V (k_width: 32 bits of P per register)."""
    return gl.DotOperandLayout(operand_index=0, parent=o_layout, k_width=32 // bitwidth)


@gluon.jit
def load_v_block(desc_v, b, h, n0, bar, buf):
    """TMA copy of V's key block starting at key n0 into `buf` (8-bit V: the [D, BLOCK_N] block of transposed V)."""
    if desc_v.dtype.primitive_bitwidth == 8:
        tma.async_copy_global_to_shared(desc_v, [b, h, 0, n0], bar, buf)
    else:
        tma.async_copy_global_to_shared(desc_v, [b, h, n0, 0], bar, buf)


@gluon.jit
def v_operand(v_bufs, slot, BLOCK_N: gl.constexpr, HEAD_D: gl.constexpr):
    """Ring slot `slot` of V as P·V's [BLOCK_N, HEAD_D] B operand (8-bit V: a K-major view of its [D, BLOCK_N]
    tile)."""
    if v_bufs.dtype.primitive_bitwidth == 8:
        return v_bufs.index(slot).reshape([HEAD_D, BLOCK_N]).permute((1, 0))
    else:
        return v_bufs.index(slot).reshape([BLOCK_N, HEAD_D])


@gluon.jit
def work_item(tile, num_m, B, H, GROUP, CAUSAL: gl.constexpr):
    """(query tile, batch, head) of work item `tile`.

    The (batch, head) pairs are taken in sections of GROUP heads whose K and V fit in half the L2
    (`_launch.l2_group`, as the tl peer triton_tl does); a section's work items are numbered query tile by query
    tile (all its heads' tile m, then m - 1, ...). Programs running at the same time then read the K/V of about one
    section, which stays in L2, instead of every head's (each read once per query tile from HBM). Causal: heaviest
    (last) query tiles first within a section, so the long tiles start first and the short ones fill the tail."""
    BH = B * H
    per_section = GROUP * num_m
    first = (tile // per_section) * GROUP
    heads = gl.minimum(GROUP, BH - first)  # the last section may hold fewer heads
    r = tile - (tile // per_section) * per_section
    m = r // heads
    if CAUSAL:
        m = num_m - 1 - m
    bh = first + r % heads
    return m, bh // H, bh % H


@gluon.jit
def key_blocks(tile_m0, rows_m0, N_CTX, BLOCK_M: gl.constexpr, ROWS: gl.constexpr, BLOCK_N: gl.constexpr,
               CAUSAL: gl.constexpr):
    """(key blocks the query tile starting at `tile_m0` reads, key blocks that need no mask for the `ROWS` rows
    starting at `rows_m0`). Unmasked: every key of the block is < N_CTX and, when causal, <= the first row."""
    if CAUSAL:
        hi = gl.minimum(tile_m0 + BLOCK_M, N_CTX)
        unmasked = gl.minimum((rows_m0 + 1) // BLOCK_N, N_CTX // BLOCK_N)
    else:
        hi = N_CTX
        unmasked = N_CTX // BLOCK_N
    return gl.cdiv(hi, BLOCK_N), unmasked


# ---- the dynamic schedule (stage 5's `dynamic` switch) ---------------------------------------------------------
# A program's first work item is its program id; each next one is fetched from a global counter (one int32 per
# launch stream, kernels/_fastlaunch.py `WorkCounters`): item = atomic_add(counter, 1) + programs, so a program
# that finishes early takes the next item in `work_item`'s order (longest first within each L2 section of heads)
# instead of the item `programs` further on. The producer partition fetches; it writes each Q slot's item to
# shared memory (`publish_tile`) before the slot's Q copy, and the consumers read it after waiting on q_ready
# (`read_tile`: the producer's arrive on that mbarrier releases the write, the consumer's wait acquires it). An item
# >= the item count ends the program; it reaches the consumers the same way, with an arrive and no copy.
# The counter is zero when a launch starts and zero when it ends: a program whose first item exists fetches until a
# fetch fails, so the fetches of a launch are the items beyond the first `programs` (total - programs of them, when
# positive) plus one failed fetch per program that had an item (min(total, programs)): exactly `total` fetches,
# returning 0, 1, ..., total - 1 in the counter's order. The one that returns total - 1 is the launch's last access
# and sets the counter back to 0 (`next_tile`). No host memset per launch, and a CUDA graph replays it as it is.


@gluon.jit
def publish_tile(tile_ids, qi, tile):
    """Write work item `tile` into Q slot qi's entry of `tile_ids` ([slots, 1] int32 in shared memory)."""
    layout: gl.constexpr = gl.BlockedLayout([1], [32], [gl.num_warps()], [0])
    tile_ids.index(qi).store(gl.full([1], tile, gl.int32, layout))


@gluon.jit
def read_tile(tile_ids, qi):
    """The work item the producer wrote into Q slot qi's entry of `tile_ids`, as a scalar."""
    layout: gl.constexpr = gl.BlockedLayout([1], [32], [gl.num_warps()], [0])
    return gl.max(tile_ids.index(qi).load(layout), axis=0)


@gluon.jit
def next_tile(work_ptr, total):
    """The next work item of this program (>= total: none left); the launch's last fetch zeroes the counter."""
    fetched = gl.atomic_add(work_ptr, 1)
    if fetched == total - 1:
        gl.atomic_xchg(work_ptr, 0)
    return fetched + gl.num_programs(0)


@gluon.jit
def mask_scores(s, rows_m0, n0, N_CTX, ROWS: gl.constexpr, BLOCK_N: gl.constexpr, CAUSAL: gl.constexpr,
                s_layout: gl.constexpr):
    """Scores of keys past N_CTX (and, when causal, of keys after the query row) set to -inf."""
    offs_n = n0 + gl.arange(0, BLOCK_N, layout=gl.SliceLayout(0, s_layout))
    keep = gl.expand_dims(offs_n < N_CTX, 0)
    if CAUSAL:
        offs_m = rows_m0 + gl.arange(0, ROWS, layout=gl.SliceLayout(1, s_layout))
        keep = keep & (gl.expand_dims(offs_m, 1) >= gl.expand_dims(offs_n, 0))
    return gl.where(keep, s, -float("inf"))


@gluon.jit
def softmax_step(s, m_i, l_i, qk_scale):
    """One online-softmax step on a block of raw scores: (p, new max, new sum, alpha = rescale of the old sums)."""
    m_new = gl.maximum(m_i, gl.max(s, axis=1) * qk_scale)
    p = gl.exp2(s * qk_scale - gl.expand_dims(m_new, 1))
    alpha = gl.exp2(m_i - m_new)
    l_new = l_i * alpha + gl.sum(p, axis=1)
    return p, m_new, l_new, alpha


# ---- softmax instruction work (stage 5's `lean_softmax` and `lazy_rescale` switches) --------------------------
# In the wgmma accumulator layout a row of a [rows, N] tile lives in one quad of 4 lanes: lane q of the quad holds
# columns 8i + 2q + {0, 1} of it (i < N/8). `gl.max(s, axis=1)` / `gl.sum(p, axis=1)` fold each lane's N/4 values
# in one dependent chain, then combine the quad with two shuffles. `lane_partials` folds them in LANE_CHAINS
# independent chains instead and stops before the shuffles: [rows, 4], one partial per quad lane. The running max
# still needs the whole quad every block (P must be scaled by the row's max); the running sum does not: it is kept
# per lane (`lean_softmax`) and its quad reduced once, in the epilogue (`finish_rowsum`).
LANE_CHAINS = gl.constexpr(4)

# `lazy_rescale`: the accumulator is rescaled only when some row's max grows by more than RESCALE_LOG2 (in the exp2
# domain: by a factor 2**8) over the max P was last scaled with; otherwise the stale max stays the reference. The
# result is the same in exact arithmetic (acc and l share the reference, and O = acc / l); P then lies in
# [0, 2**8] instead of [0, 1], which fp16 (max 65504), bf16 and e4m3 (max 448) hold with the same relative
# rounding, and the fp32 sums stay far from overflow. FlashAttention-4 uses the same threshold.
RESCALE_LOG2 = gl.constexpr(8.0)


@gluon.jit
def lane_partials(x, IS_MAX: gl.constexpr):
    """x [rows, N] (the wgmma accumulator layout) folded to [rows, 4]: each quad lane's own columns combined (max or
    sum) in LANE_CHAINS independent chains, no shuffle."""
    ROWS: gl.constexpr = x.shape[0]
    N: gl.constexpr = x.shape[1]
    x = gl.reshape(x, [ROWS, LANE_CHAINS, N // (8 * LANE_CHAINS), 4, 2])
    if IS_MAX:
        x = gl.max(gl.max(gl.max(x, axis=4), axis=2), axis=1)
    else:
        x = gl.sum(gl.sum(gl.sum(x, axis=4), axis=2), axis=1)
    return x


@gluon.jit
def fresh_rowsum(s_zero, l_i, LEAN: gl.constexpr):
    """The running sum before the first key block: per quad lane ([rows, 4]) with `lean_softmax`, else `l_i`."""
    if LEAN:
        return lane_partials(s_zero, False)
    else:
        return l_i


@gluon.jit
def finish_rowsum(l_i, s_layout: gl.constexpr, LEAN: gl.constexpr):
    """The row sums for the epilogue: the per-lane partials' quad reduced (once per work item) with `lean_softmax`."""
    if LEAN:
        return gl.convert_layout(gl.sum(l_i, axis=1), gl.SliceLayout(1, s_layout))
    else:
        return l_i


@gluon.jit
def softmax_block(s, m_i, l_i, qk_scale, LEAN: gl.constexpr, LAZY: gl.constexpr):
    """One online-softmax step, as `softmax_step` with the two switches: (p, new max, new sum, alpha, rescale?).
    `rescale?` is a runtime flag with `lazy_rescale` (see RESCALE_LOG2), and unused (every block rescales) without."""
    if LEAN:
        m_blk = gl.convert_layout(gl.max(lane_partials(s, True), axis=1), m_i.type.layout, assert_trivial=True)
    else:
        m_blk = gl.max(s, axis=1)
    m_new = gl.maximum(m_i, m_blk * qk_scale)
    need = m_new
    if LAZY:
        need = gl.max(m_new - m_i, axis=0) > RESCALE_LOG2  # the first block's -inf old max always rescales
        m_new = gl.where(need, m_new, m_i)
    p = gl.exp2(s * qk_scale - gl.expand_dims(m_new, 1))
    alpha = gl.exp2(m_i - m_new)  # exactly 1 where the reference max stays
    if LEAN:
        part = lane_partials(p, False)
        alpha_l = gl.convert_layout(alpha, gl.SliceLayout(1, part.type.layout), assert_trivial=True)
        l_new = l_i * gl.expand_dims(alpha_l, 1) + part
    else:
        l_new = l_i * alpha + gl.sum(p, axis=1)
    return p, m_new, l_new, alpha, need


@gluon.jit
def rescale(acc, alpha, o_layout: gl.constexpr):
    return acc * gl.expand_dims(gl.convert_layout(alpha, gl.SliceLayout(1, o_layout)), 1)


@gluon.jit
def rescale_if(acc, alpha, need, o_layout: gl.constexpr, LAZY: gl.constexpr):
    """`rescale`, skipped (a branch uniform over the warp group) with `lazy_rescale` when no row's max moved past
    the threshold."""
    if LAZY:
        if need:
            acc = rescale(acc, alpha, o_layout)
    else:
        acc = rescale(acc, alpha, o_layout)
    return acc


@gluon.jit
def online_block(s, m_i, l_i, acc, qk_scale, dtype: gl.constexpr, p_layout: gl.constexpr, o_layout: gl.constexpr,
                 LEAN: gl.constexpr = False, LAZY: gl.constexpr = False):
    """One key block's online softmax when its P·V follows at once: (P as P·V's A operand, new max, new sum, the
    accumulator rescaled to the new max)."""
    pl.enter_scope("consumer.softmax")
    p, m_i, l_i, alpha, need = softmax_block(s, m_i, l_i, qk_scale, LEAN, LAZY)
    pl.exit_scope("consumer.softmax")
    pl.enter_scope("consumer.rescale")
    acc = rescale_if(acc, alpha, need, o_layout, LAZY)
    pl.exit_scope("consumer.rescale")
    return gl.convert_layout(p.to(dtype), p_layout), m_i, l_i, acc


@gluon.jit
def fresh_state(ROWS: gl.constexpr, HEAD_D: gl.constexpr, s_layout: gl.constexpr, o_layout: gl.constexpr):
    """(running max, running sum, accumulator) of a query tile before its first key block."""
    m_i = gl.full([ROWS], -float("inf"), gl.float32, gl.SliceLayout(1, s_layout))
    l_i = gl.zeros([ROWS], gl.float32, gl.SliceLayout(1, s_layout))
    return m_i, l_i, gl.zeros([ROWS, HEAD_D], gl.float32, o_layout)


@gluon.jit
def store_output(o_ptr, acc, l_i, b, h, rows_m0, N_CTX, sob, soh, som, ROWS: gl.constexpr, HEAD_D: gl.constexpr,
                 o_layout: gl.constexpr):
    """O rows [rows_m0, rows_m0 + ROWS) of head (b, h) = acc / l, rows past N_CTX not written."""
    l_o = gl.convert_layout(l_i, gl.SliceLayout(1, o_layout))
    out = acc / gl.expand_dims(l_o, 1)
    rows = rows_m0 + gl.arange(0, ROWS, layout=gl.SliceLayout(1, o_layout))
    cols = gl.arange(0, HEAD_D, layout=gl.SliceLayout(0, o_layout))
    base = o_ptr + b.to(gl.int64) * sob + h.to(gl.int64) * soh
    ptrs = base + gl.expand_dims(rows.to(gl.int64) * som, 1) + gl.expand_dims(cols, 0)
    keep = gl.expand_dims(rows < N_CTX, 1) & gl.expand_dims(cols < HEAD_D, 0)
    gl.store(ptrs, out.to(o_ptr.dtype.element_ty), mask=keep)
