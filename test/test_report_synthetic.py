"""The synthetic report: its run plan, and its tables, verdicts and learning curve on hand-made numbers."""

import json
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import yaml
from conftest import load_tool

render = load_tool("report_render")
report = load_tool("report_synthetic")


def test_stat_shows_mean_sample_std_and_seed_count():
    assert render._stat([0.5]) == "0.500 (1 seed)"
    assert render._stat([0.4, 0.5, 0.6]) == "0.500 ± 0.100 (3 seeds)"
    assert render._stat([]) == "not run yet"


def test_learning_curve_png_draws_every_curve_and_fill(tmp_path):
    curves = {"SelfDC": [(100, 0.9), (200, 0.5), (300, 0.3)], "supervised": [(100, 0.8), (300, 0.25)],
              "L_dc": []}
    fills = {"nearest fill": 0.42, "morphological fill": 0.41, "linear fill": 0.43}
    path = render.save_learning_curve(tmp_path / "curve.png", curves, fills, size=(300, 400))
    img = cv2.imread(str(path))
    assert img.shape == (300, 400, 3)
    for colour in [*render.CURVE_COLOURS[:2], *render.FILL_COLOURS]:
        assert np.all(img == colour, axis=-1).any(), colour


def test_plan_runs_each_experiment_once_in_priority_order(tmp_path):
    args = SimpleNamespace(steps=20, seeds=[0, 1, 2], curve_points=2, overrides=[], no_progress=True,
                           only=None, curve_steps=300)
    base = report.base_config(args, tmp_path)
    runs, evals = report.plan(args, base)
    keys = [r.key for r in runs]
    assert len(keys) == len(set(keys))
    # Seed 0 of Table 3 first (the learning curve), then the reset comparison, Table 1, generalisation.
    assert [r.group for r in runs[:6]] == ["table3"] * 6 and runs[6].group == "reset_off"
    assert sum(r.group == "table3" for r in runs) == 6 * 3
    assert sum(r.group == "table1" for r in runs) == len(report.SPARSITIES) - 1  # 500 points = Table 3
    by_key = {r.key: r for r in runs}
    assert by_key["reset_off/row8/seed0"].cfg["model"]["preserve_input_in_training"] is False
    assert by_key["table3/row1/seed1"].cfg["loss"]["w_sms"] == 0 and by_key["table3/row1/seed1"].cfg["train"][
        "seed"] == 1
    corridor = by_key["generalisation/corridor"].cfg["data"]
    assert corridor["train"]["environment"] == corridor["val"]["environment"] == "corridor"
    assert set(by_key["table3/row8/seed0"].evals) == {report.ROOM_EVAL, *(f"generalisation: {e}" for e in
                                                                            report.ENVIRONMENTS)}
    tof = next(r for r in runs if r.label.startswith("ToF"))
    assert tof.cfg["data"]["train"]["sparse"] == "tof" and evals[tof.evals[0]].spec["sparse"] == "tof"
    # The long curves come last: SelfDC, supervised and L_dc alone, 300 steps with a decaying lr.
    long = [r for r in runs if r.group == "curve"]
    assert runs[-len(long):] == long and {r.label for r in long} == set(report.CURVE_LABELS)
    for r in long:
        t = r.cfg["train"]
        assert (t["max_steps"], t["eval_every"], t["amp"], t["seed"]) == (300, 150, True, 0)
        assert t["epochs"] * 100 >= 300 and r.cfg["schedule"]["factors"] == [1.0, 0.2, 0.04]
    assert by_key["curve/supervised/steps300"].cfg["train"]["mode"] == "supervised"
    # The tables' runs: bfloat16 where the CPU has it, the lr decayed 5x at 50% and 75% of the steps.
    table_run = by_key["table3/row8/seed0"].cfg
    assert table_run["train"]["amp"] is True and table_run["train"]["max_steps"] == 20
    assert table_run["schedule"]["milestones"] == [0.1, 0.15]
    assert table_run["schedule"]["factors"] == [1, 0.2, 0.04]


def _context():
    return {"budget": ["x=1"], "model": {}, "steps": 10, "image_size": [64, 80], "frames": [8, 4],
            "ablations": report.ABLATIONS, "full": report.FULL,
            "supervised": report.SUPERVISED, "sparsities": ["A"], "room_eval": "room",
            "environments": ("room", "warehouse"), "curve_steps": 30, "curve_points": 3,
            "max_depth": {"room": 10.0, "generalisation: room": 40.0, "generalisation: warehouse": 40.0}}


def test_report_tables_and_verdicts_follow_the_numbers(tmp_path):
    def scores(rmse):
        return {"rmse": rmse, "rel": 0.1, "d1": 0.9}

    fill = {m: scores(v) for m, v in zip(render.FILLS, (0.40, 0.45, 0.42), strict=True)}
    fills = {"room": fill, "Table 1: A": fill, "generalisation: room": fill,
             "generalisation: warehouse": {m: scores(2.0) for m in render.FILLS}}
    records = [{"group": "table3", "label": report.FULL, "seed": s, "seconds": 10.0,
                "curve": [(5, 0.5), (10, r)],
                "scores": {"room": scores(r), "generalisation: room": scores(r),
                           "generalisation: warehouse": scores(2.5)}}
               for s, r in ((0, 0.30), (1, 0.34))]
    records.append({"group": "table3", "label": report.ABLATIONS[0][0], "seed": 0, "seconds": 9.0,
                    "curve": [], "scores": {"room": scores(0.60)}})
    records.append({"group": "table1", "label": "A", "seed": 0, "seconds": 9.0, "curve": [],
                    "scores": {"Table 1: A": scores(0.50)}})
    records.append({"group": "curve", "label": report.FULL, "seed": 0, "seconds": 30.0,
                    "curve": [(10, 0.5), (20, 0.28), (24, 0.29), (30, 0.27)],
                    "scores": {"room": scores(0.27)}})
    render.render_outputs(tmp_path, _context(), fills, records, {"SelfDC": tmp_path / "none"}, None, 0)
    text = (tmp_path / "synthetic_report.md").read_text()
    assert f"| SelfDC ({report.FULL}) | 0.320 ± 0.028 (2 seeds) |" in text
    assert "beats every fill on unseen rooms: yes (0.320 m against nearest fill 0.400 m)" in text
    assert "| A | 0.500 | 0.400 | 0.450 | 0.420 |" in text
    assert "SelfDC beats all three fills at 0 of the 1 other sparsities" in text
    assert "| SelfDC, room | 0.300 | 2.500 |" in text  # seed 0 only, on both environments
    assert "| SelfDC, warehouse | not run yet | not run yet |" in text
    assert "Tested in the warehouse: the models trained in no environment beat" in text
    assert (tmp_path / "figures" / "synthetic_learning_curve.png").exists()
    # Long curve: its end, its best point and its change over the last fifth (steps 24..30).
    assert "| SelfDC | 0.270 | 0.270 (30) | -0.020 |" in text
    assert "| nearest fill | 0.400 | | |" in text
    assert (tmp_path / "figures" / "synthetic_learning_curve_long.png").exists()


def test_report_of_some_experiments_shows_only_their_sections(tmp_path):
    fill = {m: {"rmse": v, "rel": 0.1, "d1": 0.9}
            for m, v in zip(render.FILLS, (0.40, 0.45, 0.42), strict=True)}
    names = ("room", "Table 1: A", "generalisation: room", "generalisation: warehouse")
    fills = dict.fromkeys(names, fill)
    records = [{"group": "table3", "label": report.FULL, "seed": 0, "seconds": 10.0, "curve": [(10, 0.3)],
                "scores": {"room": {"rmse": 0.3, "rel": 0.1, "d1": 0.9}}}]
    command = "python training/report_synthetic.py --only table3"
    ctx = {**_context(), "experiments": ["table3"], "command": command}
    render.render_outputs(tmp_path, ctx, fills, records, {"SelfDC": tmp_path / "none"}, None, 0)
    text = (tmp_path / "synthetic_report.md").read_text()
    assert "## (b) Table 3 ablation" in text and f"| SelfDC ({report.FULL}) | 0.300 (1 seed) |" in text
    assert "Generated by `python training/report_synthetic.py --only table3`" in text
    assert "- Experiments: table3 (`--only`)" in text
    for absent in ("## (c)", "## (d)", "## (e)", "## Long learning curves"):
        assert absent not in text, absent


def test_a_run_finished_with_another_budget_is_not_mixed_into_the_report(tmp_path):
    args = SimpleNamespace(steps=20, seeds=[0], curve_points=2, overrides=[], no_progress=True,
                           only=["table3"], curve_steps=0)
    run = report.plan(args, report.base_config(args, tmp_path))[0][0]
    folder = tmp_path / "runs" / run.key
    folder.mkdir(parents=True)
    assert report.finished_result(run, tmp_path) is None
    (folder / "result.json").write_text(json.dumps({"key": run.key}))
    trained = {**run.cfg, "train": {**run.cfg["train"], "out_dir": "elsewhere", "progress": True}}
    (folder / "config.yaml").write_text(yaml.safe_dump(trained))
    assert report.finished_result(run, tmp_path) == {"key": run.key}  # paths and progress do not count
    trained["train"]["max_steps"] = 200
    (folder / "config.yaml").write_text(yaml.safe_dump(trained))
    with pytest.raises(SystemExit, match=r"train.max_steps: 200 -> 20"):
        report.finished_result(run, tmp_path)
