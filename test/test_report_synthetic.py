"""The synthetic report's tables over seeds and its learning-curve figure, on hand-made numbers."""

from types import SimpleNamespace

import cv2
import numpy as np
from conftest import load_tool

report = load_tool("report_synthetic")


def _scores(rmse, rel=0.1, d1=0.9):
    return SimpleNamespace(mean={"rmse": rmse, "rel": rel, "d1": d1})


def test_cells_show_mean_and_sample_std_over_seeds():
    assert report._cells([_scores(0.5)]) == "0.500 | 0.100 | 90.0"
    # rmse 0.4, 0.5, 0.6: mean 0.5, sample std 0.1.
    cells = report._cells([_scores(0.4), _scores(0.5), _scores(0.6, d1=0.6)])
    assert cells == "0.500 ± 0.100 | 0.100 ± 0.000 | 80.0 ± 17.3"


def test_learning_curve_png_draws_every_curve_and_fill(tmp_path):
    curves = {"SelfDC": [(100, 0.9), (200, 0.5), (300, 0.3)], "supervised": [(100, 0.8), (300, 0.25)],
              "L_dc": []}
    fills = {"nearest fill": 0.42, "morphological fill": 0.41, "linear fill": 0.43}
    path = report.save_learning_curve(tmp_path / "curve.png", curves, fills, size=(300, 400))
    img = cv2.imread(str(path))
    assert img.shape == (300, 400, 3)
    for colour in [*report.CURVE_COLOURS[:2], *report.FILL_COLOURS]:
        assert np.all(img == colour, axis=-1).any(), colour
