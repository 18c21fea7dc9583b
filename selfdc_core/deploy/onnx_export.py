"""ONNX export of SelfDC for onnxruntime and TensorRT: standard ops only, checked against PyTorch.

The graph takes `rgb` (B,3,H,W) float32 in [0, 1] and `sparse` (B,1,H,W) metres (0 = no measurement)
and returns `depth` (B,1,H,W) metres and `confidence` (B,1,H,W). The batch is dynamic; H and W are
fixed at export (the completer resizes camera images to them). The propagation is exported as plain
gathers (no DeformConv, no custom op), so TensorRT builds it without plugins and older onnxruntime
releases run it. Input checks live in the loaders, outside the graph.
"""

from __future__ import annotations

import copy
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

INPUT_NAMES = ("rgb", "sparse")
OUTPUT_NAMES = ("depth", "confidence")
DEFAULT_OPSET = 17
STANDARD_DOMAINS = ("", "ai.onnx")


class ExportError(RuntimeError):
    """The model cannot be exported, or the exported file does not match PyTorch."""


class ExportGraph(nn.Module):
    """What the ONNX graph computes: (rgb, sparse) -> (depth, confidence), float32 in and out."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.dtype = next(model.parameters()).dtype

    def forward(self, rgb: torch.Tensor, sparse: torch.Tensor):
        out = self.model.forward_unchecked(rgb.to(self.dtype), sparse.to(self.dtype))
        return out["depth"].float(), out["confidence"].float()


def example_inputs(batch: int, height: int, width: int, seed: int = 0, density: float = 0.01):
    """Random rgb in [0,1] and ~1 % sparse depths in [0.5, 10] m, as numpy float32 arrays."""
    rng = np.random.default_rng(seed)
    rgb = rng.random((batch, 3, height, width), dtype=np.float32)
    measured = rng.random((batch, 1, height, width)) < density
    sparse = np.where(measured, rng.uniform(0.5, 10.0, (batch, 1, height, width)), 0).astype(np.float32)
    return rgb, sparse


def export_onnx(model: nn.Module, path: str | Path, height: int, width: int,
                opset: int = DEFAULT_OPSET, fp16: bool = False) -> Path:
    """Write `model` as ONNX to `path`; ExportError when the graph would hold a non-standard op."""
    import onnx

    path = Path(path)
    model = copy.deepcopy(model).eval()
    if getattr(model, "seg_decoder", None) is not None:
        model.drop_segmentation()
    device = torch.device("cuda" if fp16 else "cpu")
    model = model.to(device, torch.float16 if fp16 else torch.float32)
    model.propagation.float()  # float32 even in an fp16 graph: see NonLocalPropagation's full_precision
    rgb, sparse = (torch.from_numpy(a).to(device) for a in example_inputs(1, height, width))
    dynamic = {name: {0: "batch"} for name in INPUT_NAMES + OUTPUT_NAMES}
    path.parent.mkdir(parents=True, exist_ok=True)
    # The TorchScript-based exporter (dynamo=False) writes opset-17 graphs that TensorRT 8.5+ (JetPack 5)
    # and older onnxruntime releases read; the torch.export-based one starts at opset 18.
    with torch.no_grad(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning, message=".*legacy TorchScript")
        warnings.filterwarnings("ignore", message="Constant folding - Only steps=1")
        torch.onnx.export(ExportGraph(model), (rgb, sparse), str(path), input_names=list(INPUT_NAMES),
                          output_names=list(OUTPUT_NAMES), dynamic_axes=dynamic, opset_version=opset,
                          do_constant_folding=True, dynamo=False)
    graph = onnx.load(str(path))
    foreign = sorted({f"{node.domain}::{node.op_type}" for node in graph.graph.node
                      if node.domain not in STANDARD_DOMAINS})
    if foreign:
        raise ExportError(f"{path}: the graph holds non-standard ops {foreign}; TensorRT and older "
                          f"onnxruntime releases could not run it")
    onnx.checker.check_model(graph)
    return path


def max_difference_to_torch(path: str | Path, model: nn.Module, height: int, width: int,
                            batch: int = 2, providers: list[str] | None = None) -> float:
    """Largest |depth_onnx - depth_torch| (m) on a random input run through both."""
    from selfdc_core.deploy.onnx_runtime import OnnxSession

    session = OnnxSession(path, providers=providers)
    rgb, sparse = example_inputs(batch, height, width, seed=1)
    depth, _ = session.run(rgb, sparse)
    reference = copy.deepcopy(model).float().cpu().eval()
    with torch.no_grad():
        expected = reference(torch.from_numpy(rgb), torch.from_numpy(sparse))["depth"].numpy()
    return float(np.abs(depth.astype(np.float32) - expected).max())
