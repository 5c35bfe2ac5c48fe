"""The work-item order of the Gluon stages, without torch: the L2 sections of heads and the query tile each work
item is, so the predictive model (perfmodel/model/predictive.py) schedules the items the kernels schedule.

The kernels number their work items in sections of GROUP heads whose K and V fit in L2_SHARE of the L2
(`l2_group_heads`; kernels/_launch.py `l2_group` sizes GROUP with it from the device's L2), a section's items
query tile by query tile, heaviest (last) tile first when causal (kernels/_gluon.py `work_item`, the device code;
`item_tiles` is its host mirror). A non-persistent grid launches item i as program i; a persistent one runs items
pid, pid + grid, ... on program pid.
"""

from __future__ import annotations

# The share of the L2 the work-item order fills with the K and V of the heads it runs together (half, leaving room
# for the Q and O traffic and the tails of other heads).
L2_SHARE = 0.5


def l2_group_heads(B: int, H: int, S: int, D: int, element_size: int, budget_bytes: int) -> int:
    """Heads whose work items are taken together: as many as fit their K and V in `budget_bytes` (L2_SHARE of the
    L2: `l2_budget`), at least one, at most B x H."""
    per_head = 2 * S * D * element_size
    return max(1, min(B * H, budget_bytes // per_head))


def l2_budget(l2_bytes: int) -> int:
    return int(l2_bytes * L2_SHARE)


def item_tiles(num_m: int, B: int, H: int, group: int, causal: bool) -> list[int]:
    """The query tile (0 .. num_m - 1) of each work item 0 .. num_m x B x H - 1, as kernels/_gluon.py `work_item`
    numbers them."""
    bh = B * H
    per_section = group * num_m
    out = []
    for tile in range(num_m * bh):
        first = (tile // per_section) * group
        heads = min(group, bh - first)  # the last section may hold fewer heads
        m = (tile - (tile // per_section) * per_section) // heads
        out.append(num_m - 1 - m if causal else m)
    return out
