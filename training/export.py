#!/usr/bin/env python3
"""Export a trained SelfDC model for deployment: slim safetensors weights or a standard-op ONNX graph.

  safetensors  weights only (no optimiser or training state, no training-only segmentation branch),
               the model config in the file's metadata; --fp16 halves the size. Loads in PyTorch.
  onnx         inputs rgb (B,3,H,W) float32 in [0,1] and sparse (B,1,H,W) metres (0 = none); outputs
               depth and confidence (B,1,H,W). Dynamic batch, fixed H x W (--height/--width). Standard
               ONNX ops only (no DeformConv, no custom ops): TensorRT builds it without plugins. The
               export is run by onnxruntime on a random input and compared with PyTorch.

examples:
  python training/export.py outputs/demo/best.pt --format safetensors --output outputs/demo/selfdc.safetensors
  python training/export.py runs/nyu/best.pt --format onnx --output selfdc_nyu.onnx --height 228 --width 304
  # then an fp16 TensorRT engine (Jetson Orin or desktop GPU, TensorRT >= 8.5):
  trtexec --onnx=selfdc_nyu.onnx --fp16 --saveEngine=selfdc_nyu.plan \\
      --minShapes=rgb:1x3x228x304,sparse:1x1x228x304 --optShapes=rgb:1x3x228x304,sparse:1x1x228x304 \\
      --maxShapes=rgb:4x3x228x304,sparse:4x1x228x304

Every model file DepthCompleter and the ROS node load (.pt, .safetensors, .onnx) is a valid input.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

TOLERANCE_M = 1e-4  # float32 ONNX vs PyTorch, largest depth difference on a random input


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", type=Path, help="training checkpoint (.pt) or slim weights (.safetensors)")
    parser.add_argument("--format", required=True, choices=["onnx", "safetensors"])
    parser.add_argument("--output", type=Path, required=True, help="file to write")
    parser.add_argument("--height", type=int, default=228, help="ONNX input height (default: 228)")
    parser.add_argument("--width", type=int, default=304, help="ONNX input width (default: 304)")
    parser.add_argument("--fp16", action="store_true",
                        help="float16 weights; for ONNX this needs a CUDA device to trace and check on")
    parser.add_argument("--opset", type=int, default=None, help="ONNX opset (default: 17)")
    parser.add_argument("--keep-segmentation", action="store_true",
                        help="safetensors: keep the training-only segmentation branch (to fine-tune later)")
    return parser.parse_args(argv)


def _file_size(path: Path) -> str:
    return f"{path.stat().st_size / 2**20:.1f} MiB"


def export(args: argparse.Namespace) -> int:
    import torch

    from selfdc_core.deploy.onnx_export import DEFAULT_OPSET, export_onnx, max_difference_to_torch
    from selfdc_core.deploy.onnx_runtime import available_providers
    from selfdc_core.deploy.weights import save_weights
    from selfdc_core.inference import DepthCompleter, model_file_kind

    if model_file_kind(args.model) == "onnx":
        raise ValueError(f"{args.model} is already an ONNX export; export from the .pt or .safetensors file")
    if args.format == "onnx" and args.fp16:
        gpu = [p for p in available_providers("auto") if p != "CPUExecutionProvider"]
        if not torch.cuda.is_available() or not gpu:
            raise ValueError("--fp16 ONNX needs CUDA (in PyTorch and onnxruntime) to trace and check the "
                             "graph, and this machine has only a CPU. Export float32 instead: TensorRT "
                             "builds an fp16 engine from it (trtexec --fp16)")
    model = DepthCompleter.from_checkpoint(args.model, device="cpu").model
    if args.format == "safetensors":
        out = save_weights(model, args.output, fp16=args.fp16, keep_segmentation=args.keep_segmentation)
        print(f"wrote {out}: {_file_size(out)} (from {args.model}: {_file_size(args.model)})")
        return 0
    if args.height < 1 or args.width < 1:
        raise ValueError(f"--height and --width must be positive, got {args.height}x{args.width}")
    out = export_onnx(model, args.output, args.height, args.width, opset=args.opset or DEFAULT_OPSET,
                      fp16=args.fp16)
    diff = max_difference_to_torch(out, model, args.height, args.width,
                                   providers=None if args.fp16 else ["CPUExecutionProvider"])
    tolerance = 1e-2 if args.fp16 else TOLERANCE_M
    print(f"wrote {out}: {_file_size(out)}, inputs rgb/sparse at {args.height}x{args.width}, dynamic batch")
    print(f"onnxruntime vs PyTorch on a random input: max |depth difference| = {diff:.2e} m "
          f"(tolerance {tolerance:.0e} m)")
    if not diff <= tolerance:
        print(f"error: {out} does not reproduce the PyTorch model", file=sys.stderr)
        return 1
    return 0


def main(argv=None) -> int:
    args = parse_args(argv)
    from selfdc_core.deploy.onnx_export import ExportError
    from selfdc_core.model_io import CheckpointError

    try:
        return export(args)
    except (CheckpointError, ExportError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
