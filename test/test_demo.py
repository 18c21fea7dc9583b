"""`make demo` end to end at a tiny budget: table, figure and a checkpoint DepthCompleter loads."""

import importlib.util
from pathlib import Path

import numpy as np

from selfdc_core.inference import DepthCompleter

ROOT = Path(__file__).resolve().parents[1]


def _demo_module():
    spec = importlib.util.spec_from_file_location("demo", ROOT / "training" / "demo.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_demo_pipeline_end_to_end(tmp_path, capsys):
    demo, root = _demo_module(), ROOT

    out = tmp_path / "demo"
    size = ["height=48", "width=64"]
    overrides = [
        *(f"data.train.{kv}" for kv in [*size, "num_frames=4"]),
        *(f"data.val.{kv}" for kv in [*size, "num_frames=2"]),
        "model.prop_iterations=2",
        "model.num_classes=8",
        "train.epochs=1",
        "train.batch_size=2",
        f"train.out_dir={out}",
        f"segmentation.cache_root={out / 'masks'}",
    ]
    config = str(root / "config" / "demo.yaml")
    rc = demo.main(["--config", config, "--no-progress", "--figures", "2", *overrides])
    printed = capsys.readouterr().out
    assert rc == 0, printed

    # The evaluation table, printed and written: SelfDC and the three classical fills on the same frames.
    for method in ("SelfDC", "nearest fill", "morphological fill", "linear fill"):
        assert f"| {method} |" in printed
    assert (out / "eval" / "table.md").read_text().startswith("| Method | Samples | RMSE (m) |")
    assert len((out / "eval" / "table.csv").read_text().splitlines()) == 5

    # Pseudo-labels came from the make_masks step (the cache), one per training frame.
    assert len(list((out / "masks").rglob("*.png"))) == 4
    figure = out / "eval" / "figures" / "qualitative.png"
    assert figure.stat().st_size > 0 and (out / "data_preview.png").exists()

    checkpoint = out / "last.pt"
    assert f"checkpoint: {checkpoint}" in printed
    completer = DepthCompleter.from_checkpoint(checkpoint, device="cpu")
    rgb = np.zeros((48, 64, 3), np.uint8)
    sparse = np.zeros((48, 64), np.float32)
    sparse[::8, ::8] = 2.0
    dense = completer.complete(rgb, sparse)
    assert dense.shape == (48, 64) and np.isfinite(dense).all()


def test_demo_rejects_unknown_key(capsys):
    rc = _demo_module().main(["--config", str(ROOT / "config" / "demo.yaml"), "train.nonexistent=1"])
    assert rc == 1
    assert "train.nonexistent" in capsys.readouterr().err
