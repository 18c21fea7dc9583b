"""Device choice shared by inference, training and the pseudo-label generators."""

from __future__ import annotations

import torch


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """'auto' -> the first CUDA device when present, else CPU; anything else as torch reads it."""
    if isinstance(device, str) and device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available (use 'auto' or 'cpu')")
    return dev


PRECISIONS = ("auto", "float32", "float16", "bfloat16")


def native_bfloat16_cpu() -> bool:
    """True where oneDNN runs bfloat16 convolutions on native units (AMX or AVX512-BF16): there they
    are about 3x faster than float32; elsewhere they are emulated and slower. torch exposes the probes
    only privately, so a torch without them reads as False (float32, always correct)."""
    names = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
    probes = (getattr(torch.cpu, name, None) for name in names)
    return any(probe is not None and bool(probe()) for probe in probes)


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for `precision` on `device`; None runs plain float32.

    'auto': float16 on CUDA, bfloat16 on a CPU with native bfloat16 units, float32 on other CPUs.
    'float16' is a CUDA path. The NLSPN propagation runs in float32 under any of them.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "auto":
        if device.type == "cuda":
            return torch.float16
        return torch.bfloat16 if device.type == "cpu" and native_bfloat16_cpu() else None
    if precision == "float16" and device.type != "cuda":
        raise ValueError("precision 'float16' needs a CUDA device (float16 autocast is a GPU path); "
                         "on a CPU use 'bfloat16' or 'float32'")
    return None if precision == "float32" else getattr(torch, precision)
