"""Mean of the k largest values of every group, for many groups at once, without sorting.

Sorting all pixels (even once per sample) costs more on CPU than a per-group loop, so the
k-th largest value of each group is found by radix selection instead: for non-negative
IEEE floats the bit pattern read as an integer has the same order as the value, so one
256-bin histogram per group and byte (most significant byte first) pins down each group's
threshold exactly. After each byte only the entries still tied with their group's threshold
prefix stay candidates, so later passes touch few entries. Values above the threshold are
taken; the threshold value itself is taken as many times as still needed, and equal values
at the threshold share that gradient evenly (the value is the same whichever a sort picks).
"""

from __future__ import annotations

import torch

_BITS_VIEW = {torch.float64: torch.int64, torch.float32: torch.int32, torch.float16: torch.int16,
              torch.bfloat16: torch.int16}


def _ordered_bits(values: torch.Tensor) -> torch.Tensor:
    """Integers whose order equals the order of the (non-negative) float values."""
    return values.detach().contiguous().view(_BITS_VIEW[values.dtype]).long()


def group_thresholds(bits: torch.Tensor, groups: torch.Tensor, take: torch.Tensor):
    """Per group, the bit pattern of its take-th largest entry and how many entries equal to it
    are still to be taken. Groups with take 0 get a threshold above every entry."""
    num_groups = take.numel()
    nbits = 64 if bits.dtype == torch.int64 else 8 * bits.element_size()
    remaining = take.clone()
    prefix = torch.zeros(num_groups, dtype=torch.long, device=bits.device)
    cand_bits, cand_groups = bits, groups
    for shift in range(nbits - 8, -1, -8):
        digit = (cand_bits >> shift) & 255
        hist = torch.bincount(cand_groups * 256 + digit, minlength=num_groups * 256).view(num_groups, 256)
        at_or_above = hist.flip(1).cumsum(1)  # column j: candidates with digit >= 255 - j
        col = (at_or_above >= remaining[:, None]).int().argmax(1)
        chosen = 255 - col
        above = at_or_above.gather(1, col[:, None]).squeeze(1) - hist.gather(1, chosen[:, None]).squeeze(1)
        remaining = remaining - above
        prefix = (prefix << 8) | chosen
        if shift:
            keep = torch.nonzero(digit == chosen.index_select(0, cand_groups)).squeeze(1)
            cand_bits, cand_groups = cand_bits.index_select(0, keep), cand_groups.index_select(0, keep)
    prefix = torch.where(take > 0, prefix, torch.iinfo(torch.int64).max)
    return prefix, remaining


def grouped_top_mean(values: torch.Tensor, groups: torch.Tensor, take: torch.Tensor) -> torch.Tensor:
    """Per group g, the mean of the take[g] largest values among those with groups == g.

    values: (P,) floating, >= 0 (gradients flow back to the taken entries only).
    groups: (P,) int64 in [0, G).  take: (G,) int64, 0 <= take[g] <= size of group g.
    Returns (G,); groups with take 0 give 0.
    """
    bits = _ordered_bits(values)
    threshold, remaining = group_thresholds(bits, groups, take)
    entry_threshold = threshold.index_select(0, groups)
    tie = bits == entry_threshold
    ties = values.new_zeros(take.numel()).index_add(0, groups, tie.to(values.dtype))
    tie_weight = remaining.to(values.dtype) / ties.clamp(min=1)
    weight = torch.where(tie, tie_weight.index_select(0, groups), (bits > entry_threshold).to(values.dtype))
    sums = values.new_zeros(take.numel()).index_add(0, groups, values * weight)
    return sums / take.clamp(min=1).to(values.dtype)
