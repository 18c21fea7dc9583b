"""DepthCompleter on onnxruntime: the same numpy API as the PyTorch completer, over an .onnx export."""

from __future__ import annotations

from pathlib import Path

import torch

from selfdc_core.deploy.onnx_runtime import OnnxSession
from selfdc_core.inference import DepthCompleter


class OnnxDepthCompleter(DepthCompleter):
    """Runs an exported SelfDC graph. Camera images are resized to the graph's fixed H x W."""

    def __init__(self, path: str | Path, device="auto", input_size=None, precision: str = "auto"):
        device = str(device)
        self.session = OnnxSession(path, device="cpu" if device == "cpu" else device)
        graph_size = (self.session.height, self.session.width)
        if input_size is not None and tuple(int(v) for v in input_size) != graph_size:
            raise ValueError(f"{path} was exported for {graph_size[0]}x{graph_size[1]} inputs but "
                             f"input_size {tuple(input_size)} was requested; export again with "
                             f"--height/--width or leave input_size unset")
        if precision not in ("auto", "float32"):
            raise ValueError(f"precision {precision!r}: an ONNX model's precision is fixed when it is "
                             f"exported (export.py --fp16), not at load; use 'auto'")
        self.device = torch.device("cpu")  # onnxruntime takes host arrays whatever provider runs them
        self.input_size = graph_size
        self.autocast_dtype = None
        self.model = None

    def predict(self, rgb: torch.Tensor, sparse: torch.Tensor) -> dict:
        depth, confidence = self.session.run(rgb.cpu().numpy(), sparse.cpu().numpy())
        out = {"depth": torch.from_numpy(depth).float()}
        if confidence is not None:
            out["confidence"] = torch.from_numpy(confidence).float()
        return out
