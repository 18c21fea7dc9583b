#!/usr/bin/env python3
"""Reproduction on synthetic scenes at a fixed CPU budget -> docs/synthetic_report.md.

(a) self-supervised SelfDC against the classical fills and the supervised baseline (same
    network trained with L1 + L2 on dense GT);
(b) the ablation rows of the paper's Table 3: L_dc alone, + L_seg, + L_sms, + L_gc, all three
    (the model/loss keys of config/ablations/table3_row{1,2,3,4,8}.yaml).

Every run starts from config/demo.yaml (synthetic rooms, Felzenszwalb pseudo-labels from the
make_masks library) with the budget below; all methods are scored on the same unseen rooms and
the same sparse inputs. Runs are deterministic for a given seed.

    python training/report_synthetic.py [--steps N] [--out docs] [key=value ...]
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]

# The fixed budget (documented in the report). Random samples at NYU-like density: the paper's
# NYU protocol samples sparse depth uniformly from the dense depth.
BUDGET = [
    "data.train.num_frames=48", "data.val.num_frames=24",
    "data.train.sparse=random", "data.val.sparse=random",
    "data.train.num_samples=40", "data.val.num_samples=40",  # 0.8% of 64x80 pixels; NYU: 500 of 228x304
    "train.epochs=1000", "train.max_steps=80", "train.batch_size=4",
]
ABLATIONS = [  # (label, ablation file, L_seg, L_sms, L_gc)
    ("1: L_dc", "table3_row1.yaml", "", "", ""),
    ("2: + L_seg", "table3_row2.yaml", "✓", "", ""),
    ("3: + L_sms", "table3_row3.yaml", "", "✓", ""),
    ("4: + L_gc", "table3_row4.yaml", "", "", "✓"),
    ("8: all (SelfDC)", "table3_row8.yaml", "✓", "✓", "✓"),
]


def row_sections(name: str) -> dict:
    """The model and loss keys an ablation row sets (its own file, not its NYU base)."""
    with open(REPO / "config" / "ablations" / name, encoding="utf-8") as f:
        row = yaml.safe_load(f)
    return {k: row[k] for k in ("model", "loss") if k in row}


def train_run(cfg: dict, progress: bool) -> tuple[Path, float]:
    from selfdc_core.training.trainer import Trainer

    start = time.perf_counter()
    cfg["train"]["progress"] = progress
    result = Trainer(cfg).fit()
    return result.last_checkpoint, time.perf_counter() - start


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--out", default=str(REPO / "docs"), help="report folder (default: docs/)")
    parser.add_argument("--work", help="folder for runs and labels (default: a temporary folder)")
    parser.add_argument("--figures", type=int, default=3, help="examples in the figure")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="applied after the budget")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        return run(args, Path(args.work or tmp))


def run(args, work: Path) -> int:
    import torch

    from selfdc_core.data.factory import build_dataset
    from selfdc_core.evaluation import completer_predict_fn, evaluate, markdown_table, table_rows, write_csv
    from selfdc_core.figures import save_comparison_figure
    from selfdc_core.inference import DepthCompleter
    from selfdc_core.segmentation import LabelCache, build_generator, make_masks
    from selfdc_core.training.build import build_split
    from selfdc_core.training.config import deep_merge, load_config, validate_config

    torch.set_num_threads(max(torch.get_num_threads(), 1))
    progress = not args.no_progress
    base = load_config(REPO / "config" / "demo.yaml", [*BUDGET, f"segmentation.cache_root={work / 'masks'}",
                                                      *args.overrides])
    # data.val is the evaluation set, scored here with every method; the runs do not validate.
    eval_spec = {**base["data"]["val"], "with_gt": True}
    base["data"]["val"] = None
    seg = base["segmentation"]

    train_set = build_split(base, "train", with_segments=False)
    labels = make_masks(train_set, build_generator(seg["generator"], **seg["generator_kwargs"]),
                        LabelCache(seg["cache_root"]), progress=progress)
    if not labels.ok:
        raise RuntimeError(f"pseudo-labels failed: {labels.failed[:3]}")
    eval_set = build_dataset({"val": eval_spec, "train": eval_spec}, "val", with_gt=True)
    max_depth = float(base["data"]["max_depth"])

    runs = [(label, deep_merge(base, row_sections(f))) for label, f, *_ in ABLATIONS]
    supervised = copy.deepcopy(base)
    supervised["train"]["mode"] = "supervised"
    runs.append(("supervised (L1 + L2 on dense GT)", supervised))

    results, seconds, examples = {}, {}, {}
    baselines = evaluate(None, eval_set, max_depth, num_examples=args.figures, progress=progress)
    for label, cfg in runs:
        cfg = copy.deepcopy(cfg)
        cfg["train"]["out_dir"] = str(work / "runs" / label.split(":")[0].split(" ")[0])
        validate_config(cfg)
        print(f"\n== {label}", flush=True)
        checkpoint, seconds[label] = train_run(cfg, progress)
        completer = DepthCompleter.from_checkpoint(checkpoint, device=cfg["train"]["device"])
        res = evaluate(completer_predict_fn(completer), eval_set, max_depth, baselines={}, method_name=label,
                       num_examples=args.figures, progress=progress)
        results[label] = res.scores[0]
        examples[label] = res.examples
        print(markdown_table([results[label]]), flush=True)

    out = Path(args.out)
    figure = out / "figures" / "synthetic_qualitative.png"
    full = ABLATIONS[-1][0]
    rows = []
    for i, ex in enumerate(baselines.examples):
        predictions = {"SelfDC": examples[full][i]["predictions"][full],
                       "supervised": examples[runs[-1][0]][i]["predictions"][runs[-1][0]],
                       **ex["predictions"]}
        rows.append({**ex, "predictions": predictions})
    save_comparison_figure(figure, rows)

    scores_a = [results[full], results[runs[-1][0]], *baselines.scores]
    write_csv(out / "figures" / "synthetic_table_a.csv", scores_a)
    header, table_b = table_rows([results[label] for label, *_ in ABLATIONS], "nyu")
    ablation_lines = ["| Method | L_seg | L_sms | L_gc | RMSE (m) | REL | δ1 (%) |",
                      "|---|:-:|:-:|:-:|--:|--:|--:|"]
    for (label, _, s, m, g), cells in zip(ABLATIONS, table_b, strict=True):
        ablation_lines.append(f"| {label} | {s} | {m} | {g} | {cells[2]} | {cells[3]} | {cells[4]} |")
    record = {
        "budget": BUDGET + list(args.overrides),
        "model": base["model"],
        "image_size": [base["data"]["train"]["height"], base["data"]["train"]["width"]],
        "frames": [base["data"]["train"]["num_frames"], eval_spec["num_frames"]],
        "sparse": (f"{eval_spec['num_samples']} random samples of the true depth (the paper's NYU protocol)"
                   if eval_spec["sparse"] == "random" else f"{eval_spec['sparse']} "
                   f"({eval_spec.get('lidar_beams', '')} beams)"),
        "train_seconds": {k: round(v, 1) for k, v in seconds.items()},
        "tables": {s.method: s.mean for s in [*results.values(), *baselines.scores]},
        "table_a_markdown": markdown_table(scores_a),
        "table_b_markdown": "\n".join(ablation_lines),
        "figure": str(figure.relative_to(out)),
        "torch_threads": torch.get_num_threads(),
    }
    (out / "figures").mkdir(parents=True, exist_ok=True)
    (out / "figures" / "synthetic_report.json").write_text(json.dumps(record, indent=2) + "\n")
    report = out / "synthetic_report.md"
    report.write_text(render_report(record, results, baselines.scores, full, runs[-1][0]), encoding="utf-8")
    print("\n" + record["table_a_markdown"] + "\n\n" + record["table_b_markdown"])
    print(f"\nwrote {report} and {figure}")
    return 0


def _verdict(ok: bool) -> str:
    return "yes" if ok else "**no**"


def render_report(record: dict, results: dict, baseline_scores: list, full: str, supervised: str) -> str:
    """The Markdown report: budget, both tables, the figure, and what the numbers say."""
    rmse = {label: s.mean["rmse"] for label, s in results.items()}
    rmse.update({s.method: s.mean["rmse"] for s in baseline_scores})
    abl = [label for label, *_ in ABLATIONS]
    singles = abl[1:4]
    facts = [
        f"- SelfDC (self-supervised) beats nearest fill: {_verdict(rmse[full] < rmse['nearest fill'])} "
        f"({rmse[full]:.3f} vs {rmse['nearest fill']:.3f} m RMSE); morphological fill: "
        f"{_verdict(rmse[full] < rmse['morphological fill'])} ({rmse['morphological fill']:.3f} m).",
        f"- The supervised baseline is better than self-supervised SelfDC, as in the paper: "
        f"{_verdict(rmse[supervised] < rmse[full])} ({rmse[supervised]:.3f} vs {rmse[full]:.3f} m).",
        f"- Every addition improves on L_dc alone (paper: yes): "
        f"{_verdict(all(rmse[x] < rmse[abl[0]] for x in singles))}.",
        f"- L_gc is the strongest single addition (paper: yes): "
        f"{_verdict(min(singles, key=rmse.get) == abl[3])}.",
        f"- All three together are best (paper: yes): {_verdict(min(abl, key=rmse.get) == full)}.",
    ]
    seconds = record["train_seconds"]
    h, w = record["image_size"]
    return "\n".join([
        "# SelfDC on synthetic scenes: a small-budget reproduction",
        "",
        "Generated by `python training/report_synthetic.py` (numbers below are measured, not edited).",
        "",
        "## Set-up and budget",
        f"- Data: procedurally rendered indoor rooms (`SyntheticScenes`), {h}x{w} pixels; "
        f"{record['frames'][0]} training frames and {record['frames'][1]} unseen evaluation rooms (another "
        f"seed). Sparse input: {record['sparse']}. Ground truth is read only for scoring and by the "
        "supervised baseline.",
        "- Pseudo-labels: the weight-free Felzenszwalb generator through the make_masks library "
        "(it needs no downloaded weights).",
        f"- Network: {record['model']}; Adam, lr and schedule of `config/demo.yaml`; "
        f"budget overrides `{' '.join(record['budget'])}`.",
        f"- CPU only, {record['torch_threads']} threads; training seconds per run: "
        + ", ".join(f"{k} {v:.0f} s" for k, v in seconds.items()) + ".",
        "- The paper trains ResNet34 for many epochs on 48k NYU frames at 228x304; this budget is several "
        "orders of magnitude smaller, so absolute numbers are not comparable and small differences between "
        "rows are within run-to-run noise.",
        "",
        "## (a) SelfDC vs classical fills and supervised training",
        "",
        record["table_a_markdown"],
        "",
        "## (b) Table 3 ablation (L_dc always on)",
        "",
        record["table_b_markdown"],
        "",
        f"![RGB, sparse, predictions, GT, error]({record['figure']})",
        "",
        "## What the numbers say",
        "",
        *facts,
        "",
    ])


if __name__ == "__main__":
    sys.exit(main())
