"""Slow, obviously-correct loop implementations of the SelfDC losses as the paper defines them.

The test suite uses them as the ground truth and bench/bench_losses.py as the "loop version".
Loops run over samples, windows and segments in plain Python; the gradient quantities are
written out per window / per segment from the depth itself, independently of selfdc_core.
"""

from __future__ import annotations

import math

import torch


def top_n(ratio: float, n: int) -> int:
    return math.ceil(round(ratio * n, 9))


def _grid_g(d: torch.Tensor, r0: int, r1: int, c0: int, c1: int) -> torch.Tensor:
    """G over grid rows r0:r1, cols c0:c1 of a (H,W) map."""
    right = (d[r0:r1, c0 + 1:c1 + 1] - d[r0:r1, c0:c1]).abs()
    down = (d[r0 + 1:r1 + 1, c0:c1] - d[r0:r1, c0:c1]).abs()
    return right + down


def gc_loop(depth, segments=None, image=None, window=8, top_ratio=0.02, basis="mask"):
    b, _, h, w = depth.shape
    gh, gw = h - 1, w - 1
    wh, ww = (gh, gw) if window == "full" else (window, window)
    window_values = []
    for i in range(b):
        d = depth[i, 0]
        for r0 in range(0, gh, wh):
            for c0 in range(0, gw, ww):
                r1, c1 = min(r0 + wh, gh), min(c0 + ww, gw)
                g = _grid_g(d, r0, r1, c0, c1)
                eligible = torch.ones_like(g, dtype=torch.bool)
                if basis == "mask":
                    s = segments[i]
                    boundary = (s[r0:r1, c0 + 1:c1 + 1] != s[r0:r1, c0:c1]) | (
                        s[r0 + 1:r1 + 1, c0:c1] != s[r0:r1, c0:c1])
                    eligible = ~boundary
                elif basis == "image":
                    gray = image[i].mean(0)
                    g = g * torch.exp(-_grid_g(gray, r0, r1, c0, c1))
                vals = g[eligible]
                if vals.numel() == 0:
                    continue
                k = min(top_n(top_ratio, g.numel()), vals.numel())
                window_values.append(torch.sort(vals, descending=True).values[:k].mean())
    if not window_values:
        return depth.sum() * 0
    return torch.stack(window_values).mean()


def sms_loop(depth, segments, top_ratio=0.4):
    b, _, h, w = depth.shape
    sample_values = []
    for i in range(b):
        d, s = depth[i, 0], segments[i]
        base_s = s[:-1, :-1]
        dx = (d[:-1, 1:] - d[:-1, :-1]).abs() * (s[:-1, 1:] == base_s)
        dy = (d[1:, :-1] - d[:-1, :-1]).abs() * (s[1:, :-1] == base_s)
        gs = dx + dy
        seg_means = []
        for label in torch.unique(base_s).tolist():
            if label == 0:
                continue
            vals = gs[base_s == label]
            k = top_n(top_ratio, vals.numel())
            seg_means.append(torch.sort(vals, descending=True).values[:k].mean())
        if seg_means:
            sample_values.append(torch.stack(seg_means).mean())
    if not sample_values:
        return depth.sum() * 0
    return torch.stack(sample_values).mean()


def dc_loop(depth, sparse):
    per_sample = []
    for i in range(depth.shape[0]):
        valid = sparse[i] > 0
        if valid.any():
            per_sample.append((depth[i][valid] - sparse[i][valid]).abs().mean())
        else:
            per_sample.append(depth.sum() * 0)
    return torch.stack(per_sample).mean()


def edge_aware_loop(depth, image):
    terms = []
    for i in range(depth.shape[0]):
        d, gray = depth[i, 0], image[i].mean(0)
        h, w = d.shape
        for r in range(h - 1):
            for c in range(w - 1):
                gd = (d[r, c + 1] - d[r, c]).abs() + (d[r + 1, c] - d[r, c]).abs()
                gi = (gray[r, c + 1] - gray[r, c]).abs() + (gray[r + 1, c] - gray[r, c]).abs()
                terms.append(gd * torch.exp(-gi))
    return torch.stack(terms).mean()


def mask_based_loop(depth, segments):
    terms = []
    for i in range(depth.shape[0]):
        d, s = depth[i, 0], segments[i]
        h, w = d.shape
        for r in range(h - 1):
            for c in range(w - 1):
                on_boundary = bool(s[r, c + 1] != s[r, c]) or bool(s[r + 1, c] != s[r, c])
                gd = (d[r, c + 1] - d[r, c]).abs() + (d[r + 1, c] - d[r, c]).abs()
                terms.append(gd * (0.0 if on_boundary else 1.0))
    return torch.stack(terms).mean()
