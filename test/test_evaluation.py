"""Evaluation tables on hand-made predictions with known metrics, and the qualitative figures."""

import csv

import cv2
import numpy as np
import pytest
import torch
from conftest import load_tool

from selfdc_core.evaluation import evaluate, markdown_table, table_rows, write_csv, write_per_image_csv
from selfdc_core.figures import save_comparison_figure

H, W = 12, 16


def _dataset(n=3, depth=2.0):
    items = []
    for i in range(n):
        gt = torch.full((1, H, W), depth)
        sparse = torch.zeros(1, H, W)
        sparse[0, 3, 4] = depth  # nearest fill of a constant scene is exact
        sparse[0, 8, 12] = depth
        rgb = torch.rand(3, H, W, generator=torch.Generator().manual_seed(i))
        items.append({"key": f"img{i}", "rgb": rgb, "sparse": sparse, "gt": gt, "K": torch.eye(3)})
    return items


def _ten_percent_too_far(rgb, sparse):
    return torch.full((rgb.shape[0], 1, H, W), 2.2)


def test_evaluate_known_metrics_and_same_inputs_for_baselines():
    seen = []

    def predict(rgb, sparse):
        seen.append(sparse.clone())
        return _ten_percent_too_far(rgb, sparse)

    result = evaluate(predict, _dataset(), max_depth=10.0, batch_size=2, num_samples=2, progress=False)
    by_name = {s.method: s for s in result.scores}
    assert list(by_name) == ["SelfDC", "nearest fill", "morphological fill"]
    assert all(len(s.per_image) == 3 and s.num_samples == 2 for s in result.scores)
    assert sum(len(s) for s in seen) == 3 and all(int((s > 0).sum()) == 2 * len(s) for s in seen)

    mean = by_name["SelfDC"].mean
    assert mean["rmse"] == pytest.approx(0.2, rel=1e-4)
    assert mean["mae"] == pytest.approx(0.2, rel=1e-4)
    assert mean["rel"] == pytest.approx(0.1, rel=1e-4)
    assert mean["irmse"] == pytest.approx(1 / 2.0 - 1 / 2.2, rel=1e-3)
    assert mean["d1"] == pytest.approx(1.0)
    assert by_name["nearest fill"].mean["rmse"] == pytest.approx(0.0, abs=1e-6)
    assert by_name["morphological fill"].mean["rmse"] == pytest.approx(0.0, abs=1e-4)


def test_tables_nyu_and_kitti_units(tmp_path):
    result = evaluate(_ten_percent_too_far, _dataset(), 10.0, baselines={}, num_samples=500, progress=False)
    md = markdown_table(result.scores, "nyu")
    lines = md.splitlines()
    assert lines[0] == "| Method | Samples | RMSE (m) | REL | δ1 (%) | δ2 (%) | δ3 (%) |"
    assert lines[2] == "| SelfDC | 500 | 0.200 | 0.100 | 100.0 | 100.0 | 100.0 |"

    header, rows = table_rows(result.scores, "kitti")
    assert header[2:] == ["RMSE (mm)", "MAE (mm)", "iRMSE (1/km)", "iMAE (1/km)"]
    assert rows[0][2:4] == ["200.0", "200.0"]
    assert float(rows[0][4]) == pytest.approx(45.45, abs=0.01)  # |1/2 - 1/2.2| per m = 45.45 per km

    path = write_csv(tmp_path / "table.csv", result.scores, "kitti")
    with open(path, newline="") as f:
        rec = list(csv.DictReader(f))
    assert rec[0]["Method"] == "SelfDC" and rec[0]["images"] == "3"
    assert float(rec[0]["rmse_si"]) == pytest.approx(0.2, rel=1e-4)

    per_image = write_per_image_csv(tmp_path / "per_image.csv", result.scores)
    assert len(per_image.read_text().splitlines()) == 1 + 3


def test_evaluate_rejects_bad_input():
    data = _dataset()
    with pytest.raises(ValueError, match="shape"):
        evaluate(lambda r, s: torch.zeros(1, 1, 3, 3), data, 10.0, progress=False)
    with pytest.raises(ValueError, match="ground truth"):
        evaluate(None, [{k: v for k, v in d.items() if k != "gt"} for d in data], 10.0, progress=False)
    with pytest.raises(ValueError, match="max_depth"):
        evaluate(None, data, 0.0, progress=False)
    with pytest.raises(ValueError, match="table style"):
        markdown_table(evaluate(None, data, 10.0, progress=False).scores, "imagenet")


def test_examples_and_figure_png(tmp_path):
    result = evaluate(_ten_percent_too_far, _dataset(), 10.0, num_examples=2, progress=False)
    assert len(result.examples) == 2
    ex = result.examples[0]
    assert ex["rgb"].dtype == np.uint8 and ex["rgb"].shape == (H, W, 3)
    assert set(ex["predictions"]) == {"SelfDC", "nearest fill", "morphological fill"}

    path = save_comparison_figure(tmp_path / "figs" / "fig.png", result.examples)
    img = cv2.imread(str(path))
    assert img is not None
    # Panels: RGB, sparse, 3 predictions, GT, error = 7 per row, 4 px gaps, 22 px label bars.
    assert img.shape == (2 * (H + 22) + 4, 7 * W + 6 * 4, 3)


def test_figure_without_gt_and_shape_errors(tmp_path):
    rgb = np.zeros((H, W, 3), np.uint8)
    sparse = np.zeros((H, W), np.float32)
    pred = np.ones((H, W), np.float32)
    example = {"rgb": rgb, "sparse": sparse, "predictions": {"a": pred}}
    path = save_comparison_figure(tmp_path / "nogt.png", [example])
    assert cv2.imread(str(path)).shape == (H + 22, 3 * W + 2 * 4, 3)
    with pytest.raises(ValueError, match="expected"):
        save_comparison_figure(tmp_path / "bad.png", [{**example, "predictions": {"a": pred[:3]}}])


def _evaluate_cli():
    return load_tool("evaluate")


@pytest.fixture(scope="module")
def one_step_checkpoint(tmp_path_factory):
    """A real checkpoint of the trainer after one step: evaluation only needs it to load and run."""
    from conftest import make_tiny_config

    from selfdc_core.training.trainer import Trainer

    out = tmp_path_factory.mktemp("one_step")
    return Trainer(make_tiny_config(out, train={"max_steps": 1, "epochs": 1})).fit().last_checkpoint


def test_evaluate_cli_sample_counts_table_csv_figures(one_step_checkpoint, tmp_path, capsys):
    val = "{name: synthetic, num_frames: 2, seed: 7, height: 48, width: 64, sparse: random, num_samples: 500}"
    rc = _evaluate_cli().main([
        "--checkpoint", str(one_step_checkpoint), "--num-samples", "50", "200", "--out", str(tmp_path),
        "--figures", "1", "--no-progress", "--device", "cpu", f"data.val={val}",
    ])
    printed = capsys.readouterr()
    assert rc == 0, printed.err
    rows = [line for line in printed.out.splitlines() if line.startswith("| ") and "---" not in line]
    assert rows[0].startswith("| Method | Samples | RMSE (m) | REL | δ1 (%)")
    assert [r.split(" | ")[:2] for r in rows[1:]] == [
        [f"| {m}", n] for n in ("50", "200") for m in ("SelfDC", "nearest fill", "morphological fill")
    ]
    # More samples make nearest fill better: the counts really reached the dataset.
    by_row = {tuple(r.split(" | ")[:2]): float(r.split(" | ")[2]) for r in rows[1:]}
    assert by_row[("| nearest fill", "200")] < by_row[("| nearest fill", "50")]
    assert len((tmp_path / "table.csv").read_text().splitlines()) == 7
    for n in (50, 200):
        assert cv2.imread(str(tmp_path / "figures" / f"qualitative_{n}.png")).shape[0] == 48 + 22


def test_evaluate_cli_clear_errors(one_step_checkpoint, tmp_path, capsys):
    bad = tmp_path / "broken.pt"
    bad.write_bytes(b"not a checkpoint")
    cfg = tmp_path / "nyu.yaml"
    missing = tmp_path / "no_nyu_here"
    cfg.write_text(f"data:\n  train: {{name: nyu, root: {missing}}}\n  val: {{name: nyu, root: {missing}}}\n")
    cli = _evaluate_cli()
    assert cli.main(["--checkpoint", str(bad), "--config", str(cfg), "--no-progress"]) == 1
    assert "broken.pt" in capsys.readouterr().err
    assert cli.main(["--checkpoint", str(one_step_checkpoint), "--config", str(cfg), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert str(missing) in err and "val/official" in err  # says which layout it expected
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    assert "--num-samples" in capsys.readouterr().out
