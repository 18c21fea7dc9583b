"""An exported SelfDC ONNX file run by onnxruntime, with its inputs checked before they reach it.

Execution providers: TensorRT, then CUDA, when this onnxruntime build has them, else the CPU.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from selfdc_core.deploy.onnx_export import INPUT_NAMES, OUTPUT_NAMES
from selfdc_core.model_io import CheckpointError

PREFERRED_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")
EXPECTED = {"rgb": "(batch, 3, H, W) float", "sparse": "(batch, 1, H, W) float"}


def available_providers(device: str = "auto") -> list[str]:
    """onnxruntime providers to try for `device` ('auto', 'cpu' or 'cuda'), best first."""
    import onnxruntime as ort

    have = ort.get_available_providers()
    wanted = ["CPUExecutionProvider"] if device == "cpu" else list(PREFERRED_PROVIDERS)
    chosen = [p for p in wanted if p in have]
    if device.startswith("cuda") and not any(p != "CPUExecutionProvider" for p in chosen):
        raise ValueError(f"device {device!r} requested but this onnxruntime has no GPU provider "
                         f"(it has {have}); install onnxruntime-gpu or use device 'cpu'")
    return chosen


class OnnxSession:
    """onnxruntime session over a SelfDC ONNX file; `run(rgb, sparse) -> (depth, confidence)`."""

    def __init__(self, path: str | Path, providers: list[str] | None = None, device: str = "auto"):
        import onnxruntime as ort

        self.path = Path(path)
        if not self.path.is_file():
            raise CheckpointError(f"ONNX file {self.path} does not exist")
        try:
            providers = providers or available_providers(device)
            self.session = ort.InferenceSession(str(self.path), providers=providers)
        except Exception as exc:  # onnxruntime raises its own exception types for unreadable graphs
            raise CheckpointError(f"ONNX file {self.path} cannot be loaded by onnxruntime: {exc}") from exc
        self._check_signature()
        self.height, self.width = self.session.get_inputs()[0].shape[2:]
        self.dtype = np.float16 if "float16" in self.session.get_inputs()[0].type else np.float32

    def _check_signature(self) -> None:
        inputs = {i.name: i for i in self.session.get_inputs()}
        outputs = [o.name for o in self.session.get_outputs()]
        problems = []
        if sorted(inputs) != sorted(INPUT_NAMES):
            problems.append(f"inputs {sorted(inputs)} (expected {list(INPUT_NAMES)})")
        else:
            for name, channels in (("rgb", 3), ("sparse", 1)):
                shape = inputs[name].shape
                if len(shape) != 4 or shape[1] != channels or not all(isinstance(s, int) for s in shape[2:]):
                    problems.append(f"input {name} of shape {shape} (expected {EXPECTED[name]} with fixed "
                                    f"H and W)")
            if inputs["rgb"].shape[2:] != inputs["sparse"].shape[2:]:
                problems.append(f"rgb {inputs['rgb'].shape} and sparse {inputs['sparse'].shape} "
                                f"differ in H, W")
        if list(OUTPUT_NAMES)[0] not in outputs:
            problems.append(f"outputs {outputs} (expected {list(OUTPUT_NAMES)})")
        if problems:
            raise CheckpointError(f"ONNX file {self.path} is not a SelfDC export: " + "; ".join(problems))

    @property
    def providers(self) -> list[str]:
        return self.session.get_providers()

    def run(self, rgb: np.ndarray, sparse: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """rgb (B,3,H,W) in [0,1], sparse (B,1,H,W) metres, at the graph's H, W."""
        for name, array in (("rgb", rgb), ("sparse", sparse)):
            if array.ndim != 4 or tuple(array.shape[2:]) != (self.height, self.width):
                raise ValueError(f"{name} has shape {array.shape}; {self.path} takes "
                                 f"(batch, C, {self.height}, {self.width})")
        feeds = {"rgb": rgb.astype(self.dtype, copy=False), "sparse": sparse.astype(self.dtype, copy=False)}
        results = dict(zip([o.name for o in self.session.get_outputs()], self.session.run(None, feeds),
                           strict=True))
        return results["depth"], results.get("confidence")
