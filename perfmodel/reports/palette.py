"""Every colour a chart draws, one meaning each: a colour names one thing across every chart (../shared/CONVENTIONS.md).

The meanings, all in `MEANINGS` (name -> colour), none sharing a colour:
- an implementation: each stage by its stage number (`stageN_...`), each peer by its name, and a kernel of the
  user's (any other name) from a range of its own (`USER_COLORS`), so an implementation keeps its colour whatever
  else a chart shows, in every run and config (`impl_colors`);
- a kind of figure: measured, the bound (speed of light), the predictive model, the config's roofline, the plan's
  numbers (its target band, its claimed gain, its gate), the plan's gains applied to the measured stage 0, the
  ablation's two gains, the stage chain, the Amdahl bound;
- a resource, one colour for its time term and its ceiling: tensor cores, the exponential unit, HBM, the launch,
  the wave tail (a model term that charges the same resource as a bound term keeps its colour: the model's wave
  tail, HBM beyond compute and exposed launch); the model's own terms (steady state, prologue/epilogue);
- a comparison verdict (regression, improvement, below threshold, within noise, no interval, different GPU);
- a constraint of the plan (#1-#4: the outline of a stall reason attributed to it);
- a phase kind of a Proton timeline (wait, wgmma, TMA issue, compute), the bars of its Gantt charts;
- a stall reason: plotly's Dark24 in the order of collectors.ncu.metrics.STALL_REASONS, a reason outside it (a newer
  ncu) in `STALL_OTHER`;
- the axis: zero lines and the error bars of a bar chart (no data meaning).

Sources: Kelly's 22 colours of maximum contrast (the implementations), plotly.colors.qualitative (D3, Dark24,
Safe) and matplotlib's tab20/tab20b, as hex. `meaning_of` names the meaning of a colour; tests/test_charts.py
checks that no colour is listed twice and that every colour every chart builder draws is the colour of what it
draws.
"""

from __future__ import annotations

import re
import zlib

from plotly.colors import qualitative

from collectors.ncu.metrics import STALL_REASONS

# ---- implementations -------------------------------------------------------------------------------------------
# Kenneth Kelly's colours of maximum contrast (1965; hex as in the Wikipedia table), so that the twelve of the
# bundled runs stay apart when one chart draws them all. Stage N's colour by the stage number in its name
# (stage0_baseline ... stage5_full, and room for two more):
STAGE_COLORS = ("#875692", "#008856", "#0067A5", "#F3C300", "#BE0032", "#8DB600", "#604E97", "#2B3D26")
# every peer of kernels/peers.py by name (tests/test_charts.py checks none is missing)
PEER_COLORS = {"sdpa_cudnn": "#F38400", "sdpa_flash": "#A1CAF1", "sdpa_efficient": "#C2B280", "flex": "#E68FAC",
               "fa3": "#882D17", "triton_tl": "#654522"}
# a kernel of the user's: a colour of this range picked by the name's CRC-32 (plotly Safe), the next free one when
# two kernels of one chart would share it
USER_COLORS = ("#88CCEE", "#CC6677", "#DDCC77", "#117733", "#332288", "#AA4499", "#44AA99", "#999933")

# ---- kinds of figure -------------------------------------------------------------------------------------------
MEASURED = "#1F77B4"  # D3 blue
BOUND = "#393B79"  # tab20b indigo: the speed of light, in every chart that draws it
MODEL = "#000000"  # the predictive model's time
ROOFLINE = "#7F7F7F"  # D3 grey: the config's roofline (min of tensor and memory ceilings)
PLAN = "#E7BA52"  # tab20b gold: what the plan says (target band, claimed gain, the 5x gate)
PLAN_ON_STAGE0 = "#C5B0D5"  # tab20 light purple: the plan's gains applied to the measured stage 0
ABLATION = "#843C39"  # tab20b: best with vs best without
FLIP = "#D6616B"  # tab20b: one switch flipped at the tuned config
STAGE_CHAIN = "#6B6ECF"  # tab20b: stage k against stage k-1
AMDAHL = "#8C6D31"  # tab20b: the most the counters say removing a constraint could buy

# ---- resources (a time term and its ceiling) and the model's own terms ----------------------------------------
TENSOR = "#17BECF"
EXP_UNIT = "#FF7F0E"
HBM = "#8CA252"
LAUNCH = "#E377C2"
WAVE_TAIL = "#9467BD"
STEADY_STATE = "#5254A3"
PROLOGUE_EPILOGUE = "#B5CF6B"
TERM_COLORS = {"tensor_ms": TENSOR, "exp_ms": EXP_UNIT, "hbm_ms": HBM, "launch_ms": LAUNCH, "wave_ms": WAVE_TAIL}
MODEL_TERM_COLORS = {"steady_ms": STEADY_STATE, "tail_ms": WAVE_TAIL, "prologue_epilogue_ms": PROLOGUE_EPILOGUE,
                     "hbm_excess_ms": HBM, "launch_ms": LAUNCH}

# ---- verdicts, constraints, stall reasons, the axis ------------------------------------------------------------
VERDICT_COLORS = {"regression": "#D62728", "improvement": "#2CA02C", "below threshold": "#BCBD22",
                  "within noise": "#C7C7C7", "no interval": "#9EDAE5", "different GPU": "#8C564B"}
CONSTRAINT_COLORS = {1: "#637939", 2: "#BD9E39", 3: "#AD494A", 4: "#756BB1"}
STALL_COLORS: dict[str, str] = dict(zip(STALL_REASONS, qualitative.Dark24[:-1]))
STALL_OTHER = qualitative.Dark24[-1]
# a phase kind of a Proton timeline (collectors/timeline/figures.py PHASE_KINDS), the bars of its Gantt charts:
# tab20's light shades
PHASE_KIND_COLORS = {"wait": "#DBDB8D", "mma": "#AEC7E8", "issue": "#98DF8A", "compute": "#FFBB78"}
AXIS = "#444444"

MEANINGS: dict[str, str] = {
    **{f"stage {i}": c for i, c in enumerate(STAGE_COLORS)},
    **{f"peer {n}": c for n, c in PEER_COLORS.items()},
    **{f"user kernel {i}": c for i, c in enumerate(USER_COLORS)},
    "measured": MEASURED, "bound": BOUND, "model": MODEL, "roofline": ROOFLINE, "plan": PLAN,
    "plan on measured stage 0": PLAN_ON_STAGE0, "ablation": ABLATION, "flip": FLIP, "stage chain": STAGE_CHAIN,
    "Amdahl": AMDAHL, "tensor": TENSOR, "exp unit": EXP_UNIT, "HBM": HBM, "launch": LAUNCH, "wave tail": WAVE_TAIL,
    "steady state": STEADY_STATE, "prologue/epilogue": PROLOGUE_EPILOGUE,
    **{f"verdict {v}": c for v, c in VERDICT_COLORS.items()},
    **{f"constraint #{k}": c for k, c in CONSTRAINT_COLORS.items()},
    **{f"stall {r}": c for r, c in STALL_COLORS.items()}, "stall (other)": STALL_OTHER,
    **{f"phase {k}": c for k, c in PHASE_KIND_COLORS.items()},
    "axis": AXIS,
}

_RGB = re.compile(r"rgba?\(\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)")


def rgb(color: str) -> tuple[int, int, int]:
    """(r, g, b) of '#rrggbb', 'rgb(...)' or 'rgba(...)' (a band's alpha is no other colour)."""
    text = color.strip()
    if text.startswith("#") and len(text) == 7:
        return int(text[1:3], 16), int(text[3:5], 16), int(text[5:7], 16)
    m = _RGB.match(text)
    if not m:
        raise ValueError(f"not a colour of the palette's forms: {color!r}")
    return int(m[1]), int(m[2]), int(m[3])


def alpha(color: str, a: float) -> str:
    """`color` as rgba with opacity `a` (a band over the plot)."""
    r, g, b = rgb(color)
    return f"rgba({r}, {g}, {b}, {a})"


_BY_RGB = {rgb(c): m for m, c in MEANINGS.items()}


def meaning_of(color: str) -> str | None:
    """The meaning `color` stands for in every chart (None: not a colour of the palette)."""
    return _BY_RGB.get(rgb(color))


def stage_number(impl: str) -> int | None:
    m = re.match(r"stage(\d+)_", impl)
    return int(m[1]) if m else None


def impl_colors(impls) -> dict[str, str]:
    """implementation name -> its colour, for the implementations one chart draws: a stage's by its number, a
    peer's by its name, a user's kernel's from USER_COLORS by its name (probing past a colour another user kernel
    of the same chart already has)."""
    out, taken = {}, set()
    for name in sorted(dict.fromkeys(str(i) for i in impls)):
        n = stage_number(name)
        if n is not None and n < len(STAGE_COLORS):
            out[name] = STAGE_COLORS[n]
        elif name in PEER_COLORS:
            out[name] = PEER_COLORS[name]
    for name in sorted(set(map(str, impls)) - set(out)):
        start = zlib.crc32(name.encode())
        free = [USER_COLORS[(start + k) % len(USER_COLORS)] for k in range(len(USER_COLORS))]
        out[name] = next((c for c in free if c not in taken), free[0])
        taken.add(out[name])
    return out
