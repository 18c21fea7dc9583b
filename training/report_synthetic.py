#!/usr/bin/env python3
"""Reproduction on synthetic scenes at a converged CPU budget -> docs/synthetic_report.md.

Every run starts from config/demo.yaml (64x80 frames, ResNet18, Felzenszwalb pseudo-labels from the
make_masks library) with the budget below: --steps optimiser steps (default 400) of batch 4 on 400
frames, the lr decayed by 5x at half and again at three quarters of them, bfloat16 autocast where
the CPU has native units (`train.amp=true`; float32 elsewhere). Each run is scored from its last
checkpoint (no checkpoint is picked on the evaluation rooms) against nearest, morphological and
linear fill on the very same sparse inputs of unseen frames (another seed). The experiments, in
the order they run:

  1. Table 3 and (a), seed 0: the ablation rows of the paper's Table 3 (L_dc alone, + L_seg, + L_sms,
     + L_gc, all three; the model/loss keys of config/ablations/table3_row{1,2,3,4,8}.yaml) and the
     supervised baseline (the same network trained with L1 + L2 on dense GT). Their validation RMSE
     gives the learning curve docs/figures/synthetic_learning_curve.png.
  2. Measurement reset: rows 1 and 8 again with NLSPN's reset switched off in training
     (model.preserve_input_in_training=false), so that L_dc reaches the propagation.
  3. Table 1 protocol: the full method at each sparsity (the paper's 200/500/1000/2000 random points
     at the same density, LiDAR at 16/32/64 beams, a ToF zone grid), trained and tested on it.
  4. Generalisation: the full method trained in each environment (room, warehouse, corridor) and
     tested in each.
  5. Table 3 for the other seeds, then the supervised baseline and the reset-off row 8 for them.
  6. Long learning curves: SelfDC, the supervised baseline and L_dc alone (seed 0) for --curve-steps
     steps, with the lr decayed by 5x at 60% and again at 80% of them, so that the curves flatten
     (docs/figures/synthetic_learning_curve_long.png).

Runs are deterministic for a given seed. Each finished run is kept in --work (its scores, training
time and learning curve), so an interrupted report resumes where it stopped, and the report is
rewritten after every run from what has finished (each row states its number of seeds).

    python training/report_synthetic.py [--steps N] [--seeds S ...] [--jobs J] [--work DIR] [key=value ...]
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import shlex
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from report_render import EXPERIMENTS, render_outputs  # noqa: E402  (a sibling script module)

# The budget (documented in the report): the demo's robot setting, a 32-beam LiDAR. The paper's NYU
# protocol (random samples of the true depth) is among the Table 1 sparsities.
BUDGET = [
    "data.train.num_frames=400", "data.val.num_frames=64",
    "data.train.sparse=lidar", "data.val.sparse=lidar",
    "data.train.lidar_beams=32", "data.val.lidar_beams=32",
    "train.batch_size=4", "train.amp=true",
]
# The lr is decayed by DECAY_FACTORS at these fractions of --steps, so that the last iterate has settled
# (the long learning curves show SelfDC flat from about 200 steps on at this size).
DECAY_AT = (0.5, 0.75)
DECAY_FACTORS = [1.0, 0.2, 0.04]
SUPERVISED = "supervised (L1 + L2 on dense GT)"
FULL = "8: all (SelfDC)"
ABLATIONS = [  # (label, ablation file, L_seg, L_sms, L_gc)
    ("1: L_dc", "table3_row1.yaml", "", "", ""),
    ("2: + L_seg", "table3_row2.yaml", "✓", "", ""),
    ("3: + L_sms", "table3_row3.yaml", "", "✓", ""),
    ("4: + L_gc", "table3_row4.yaml", "", "", "✓"),
    (FULL, "table3_row8.yaml", "✓", "✓", "✓"),
]
RESET_OFF = ["model.preserve_input_in_training=false"]
CURVE_LABELS = (ABLATIONS[0][0], FULL, SUPERVISED)  # the long learning curves
# Table 1: the paper's random-point counts at 228x304, scaled to the same density at 64x80.
PIXEL_RATIO = (64 * 80) / (228 * 304)
SPARSITIES = [(f"{n} random points ({round(n * PIXEL_RATIO)} here)",
               {"sparse": "random", "num_samples": round(n * PIXEL_RATIO)}) for n in (200, 500, 1000, 2000)]
SPARSITIES += [(f"LiDAR, {b} beams", {"sparse": "lidar", "lidar_beams": b}) for b in (16, 64)]
SPARSITIES.insert(5, ("LiDAR, 32 beams (the Table 3 setting)", None))
SPARSITIES += [("ToF zone grid (about 64 zones)", {"sparse": "tof", "num_samples": 64})]
ENVIRONMENTS = ("room", "warehouse", "corridor")
ROOM_EVAL = "room, 32-beam LiDAR"
GENERALISATION_MAX_DEPTH = 40.0  # m: the warehouse and corridor reach about 30 m


@dataclass
class Run:
    """One training run and the evaluation sets it is scored on."""

    key: str  # folder under --work/runs, and the cache key
    group: str  # table3 | reset_off | table1 | generalisation
    label: str
    seed: int
    cfg: dict
    evals: list[str] = field(default_factory=list)  # names of EvalSet


@dataclass
class EvalSet:
    name: str
    spec: dict  # the synthetic split
    max_depth: float


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--out", default=str(REPO / "docs"), help="report folder (default: docs/)")
    parser.add_argument("--work", default=str(REPO / "outputs" / "report_synthetic"),
                        help="runs, pseudo-labels and finished results; reused to resume "
                             "(default: outputs/report_synthetic)")
    parser.add_argument("--steps", type=int, default=400, help="optimiser steps per run (default: 400)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2],
                        help="training seeds of Table 3 and (a); mean ± std over them (default: 0 1 2)")
    parser.add_argument("--curve-steps", type=int, default=600,
                        help="steps of the long learning-curve runs (default: 600; 0 skips them)")
    parser.add_argument("--only", nargs="+",
                        choices=EXPERIMENTS,
                        help="run only these experiments (default: all)")
    parser.add_argument("--jobs", type=int, default=1,
                        help="runs trained at once, in processes that share the CPU threads (default: 1)")
    parser.add_argument("--curve-points", type=int, default=10,
                        help="validations per run for the learning curve (default: 10)")
    parser.add_argument("--figures", type=int, default=3, help="examples in the qualitative figure")
    parser.add_argument("--render-only", action="store_true",
                        help="write the report from the finished runs in --work, training nothing")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="applied after the budget")
    args = parser.parse_args(argv)
    if min(args.steps, args.curve_points, args.jobs) < 1 or len(set(args.seeds)) != len(args.seeds):
        parser.error("--steps, --curve-points and --jobs must be positive and --seeds distinct")
    logging.basicConfig(level=logging.WARNING)
    return run(args, Path(args.work))


def base_config(args, work: Path) -> dict:
    from selfdc_core.training.config import load_config

    eval_every = max(args.steps // args.curve_points, 1)
    budget = [*BUDGET, f"train.max_steps={args.steps}", f"train.eval_every={eval_every}"]

    def load() -> dict:  # the overrides last: they may change the schedule too
        return load_config(REPO / "config" / "demo.yaml",
                           [*budget, *args.overrides, f"segmentation.cache_root={work / 'masks'}"])

    base = load()
    steps_per_epoch = max(base["data"]["train"]["num_frames"] // base["train"]["batch_size"], 1)
    milestones = ",".join(f"{f * args.steps / steps_per_epoch:g}" for f in DECAY_AT)  # in epochs
    factors = ",".join(f"{f:g}" for f in DECAY_FACTORS)
    budget += [f"schedule.milestones=[{milestones}]", f"schedule.factors=[{factors}]"]
    base = load()
    budget += args.overrides
    base["train"]["epochs"] = max(base["train"]["epochs"], -(-args.steps // steps_per_epoch))
    base["train"]["progress"] = not args.no_progress
    base["budget"] = budget
    return base


def plan(args, base: dict) -> tuple[list[Run], dict[str, EvalSet]]:
    """Every run of the report in running order, and the evaluation sets they need."""
    from selfdc_core.training.config import apply_override, deep_merge

    val, max_depth = base["data"]["val"], base["data"]["max_depth"]
    evals = {ROOM_EVAL: EvalSet(ROOM_EVAL, {**val, "with_gt": True}, max_depth)}
    gen_evals = [f"generalisation: {env}" for env in ENVIRONMENTS]
    for env, name in zip(ENVIRONMENTS, gen_evals, strict=True):
        evals[name] = EvalSet(name, {**base["data"]["val"], "environment": env, "with_gt": True},
                              GENERALISATION_MAX_DEPTH)

    def variant(sections: dict, overrides=(), data: dict | None = None) -> dict:
        cfg = deep_merge(copy.deepcopy(base), sections)
        for override in overrides:
            apply_override(cfg, override)
        for split in ("train", "val"):
            cfg["data"][split].update(data or {})
        return cfg

    def table3(seed: int) -> list[Run]:
        runs = [Run(f"table3/row{label.split(':')[0]}/seed{seed}", "table3", label, seed,
                    variant(row_sections(f)), [ROOM_EVAL]) for label, f, *_ in ABLATIONS]
        runs.append(Run(f"table3/supervised/seed{seed}", "table3", SUPERVISED, seed,
                        variant({"train": {"mode": "supervised"}}), [ROOM_EVAL]))
        return runs

    def reset_off(label: str, seed: int) -> Run:
        file = dict((a[0], a[1]) for a in ABLATIONS)[label]
        return Run(f"reset_off/row{label.split(':')[0]}/seed{seed}", "reset_off", label, seed,
                   variant(row_sections(file), RESET_OFF), [ROOM_EVAL])

    first, rest = args.seeds[0], args.seeds[1:]
    full_file = ABLATIONS[-1][1]
    runs = table3(first)
    runs[len(ABLATIONS) - 1].evals += gen_evals  # the full method of seed 0 is also the room column
    runs += [reset_off(ABLATIONS[0][0], first), reset_off(FULL, first)]
    for i, (label, data) in enumerate(SPARSITIES):
        if data is None:  # the Table 3 setting: its full-method run is this row
            continue
        name = f"Table 1: {label}"
        evals[name] = EvalSet(name, {**val, **data, "with_gt": True}, max_depth)
        runs.append(Run(f"table1/{i}", "table1", label, first, variant(row_sections(full_file), data=data),
                        [name]))
    for env in ENVIRONMENTS[1:]:
        runs.append(Run(f"generalisation/{env}", "generalisation", env, first,
                        variant(row_sections(full_file), data={"environment": env}), gen_evals))
    later = [table3(seed) for seed in rest]
    runs += [r for seed_runs in later for r in seed_runs if r.label != SUPERVISED]
    runs += [r for seed_runs in later for r in seed_runs if r.label == SUPERVISED]
    runs += [reset_off(FULL, seed) for seed in rest]
    for r in runs:
        if r.seed != first or r.group not in ("table3", "reset_off"):
            r.cfg["train"]["eval_every"] = args.steps  # only the first seed's curves are drawn
    if args.curve_steps > 0:
        runs += [long_curve(r, args) for r in table3(first) if r.label in CURVE_LABELS]
    for r in runs:
        r.cfg["train"]["seed"] = r.seed
        r.cfg.pop("budget", None)
    return [r for r in runs if args.only is None or r.group in args.only], evals


def long_curve(r: Run, args) -> Run:
    """`r` trained for --curve-steps steps with a decaying lr, drawn at --curve-points points."""
    cfg = copy.deepcopy(r.cfg)
    steps, t = args.curve_steps, cfg["train"]
    epochs = -(-steps // max(cfg["data"]["train"]["num_frames"] // t["batch_size"], 1))
    t.update(max_steps=steps, epochs=epochs, eval_every=max(steps // args.curve_points, 1), amp=True)
    cfg["schedule"].update(milestones=[round(0.6 * epochs), round(0.8 * epochs)], factors=[1.0, 0.2, 0.04])
    return Run(f"curve/{r.key.split('/')[1]}/steps{steps}", "curve", r.label, r.seed, cfg, list(r.evals))


def row_sections(name: str) -> dict:
    """The model and loss keys an ablation row sets (its own file, not its NYU base)."""
    with open(REPO / "config" / "ablations" / name, encoding="utf-8") as f:
        row = yaml.safe_load(f)
    return {k: row[k] for k in ("model", "loss") if k in row}


def ensure_labels(cfg: dict, progress: bool, done: set) -> None:
    """Pseudo-labels of a run's training frames (cached: each frame is labelled once)."""
    from selfdc_core.segmentation import LabelCache, build_generator, make_masks
    from selfdc_core.training.build import build_split

    key = json.dumps(cfg["data"]["train"], sort_keys=True)
    if key in done:
        return
    seg = cfg["segmentation"]
    labels = make_masks(build_split(cfg, "train", with_segments=False),
                        build_generator(seg["generator"], **seg["generator_kwargs"]),
                        LabelCache(seg["cache_root"]), progress=progress)
    if not labels.ok:
        raise RuntimeError(f"pseudo-labels failed: {labels.failed[:3]}")
    done.add(key)


def train_and_score(r: Run, work: Path, evals: dict[str, EvalSet], datasets: dict, progress: bool) -> dict:
    """Train one run, score it on its evaluation sets; the result record (also written to --work)."""
    from selfdc_core.evaluation import completer_predict_fn, evaluate
    from selfdc_core.inference import DepthCompleter
    from selfdc_core.training.config import validate_config
    from selfdc_core.training.trainer import Trainer

    out_dir = work / "runs" / r.key
    r.cfg["train"]["out_dir"] = str(out_dir)
    validate_config(r.cfg)
    start = time.perf_counter()
    result = Trainer(r.cfg).fit()
    seconds = time.perf_counter() - start
    if result.status not in ("finished", "max_steps"):  # e.g. interrupted: its weights are not the budget's
        raise SystemExit(f"{r.key}: training {result.status} at step {result.step}; "
                         "rerun to resume the report")
    completer = DepthCompleter.from_checkpoint(result.last_checkpoint, device=r.cfg["train"]["device"])
    scores = {}
    for name in r.evals:
        res = evaluate(completer_predict_fn(completer), datasets[name], evals[name].max_depth, baselines={},
                       method_name=r.label, progress=progress)
        scores[name] = res.scores[0].mean
    record = {"key": r.key, "group": r.group, "label": r.label, "seed": r.seed, "seconds": seconds,
              "scores": scores, "curve": read_curve(out_dir / "tb")}
    (out_dir / "result.json").write_text(json.dumps(record, indent=2) + "\n")
    return record


def finished_result(r: Run, work: Path) -> dict | None:
    """The record of `r` when it has finished in `work` with this very configuration; a run finished
    with another budget stops the report rather than be mixed into it."""
    folder = work / "runs" / r.key
    if not (folder / "result.json").exists():
        return None
    trained = yaml.safe_load((folder / "config.yaml").read_text())
    differences = _differences(_without_paths(r.cfg), _without_paths(trained))
    if differences:
        raise SystemExit(f"{folder} was trained with another configuration ({'; '.join(differences[:3])}); "
                         "pass another --work for this budget, or delete that folder")
    return json.loads((folder / "result.json").read_text())


def _without_paths(cfg: dict) -> dict:
    cfg = copy.deepcopy(cfg)
    cfg["train"].pop("out_dir", None)
    cfg["train"].pop("progress", None)
    cfg.get("segmentation", {}).pop("cache_root", None)
    return cfg


def _differences(planned, trained, prefix: str = "") -> list[str]:
    """'key: trained -> planned' for every leaf that differs."""
    if isinstance(planned, dict) and isinstance(trained, dict):
        return [d for k in sorted(set(planned) | set(trained), key=str)
                for d in _differences(planned.get(k), trained.get(k), f"{prefix}{k}.")]
    return [] if planned == trained else [f"{prefix[:-1]}: {trained!r} -> {planned!r}"]


def read_curve(tb_dir: Path) -> list[tuple[int, float]]:
    """The (step, val/rmse) points the trainer wrote to TensorBoard, in step order."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tb_dir), size_guidance={"scalars": 0})
    events.Reload()
    if "val/rmse" not in events.Tags().get("scalars", []):
        return []
    return sorted((e.step, float(e.value)) for e in events.Scalars("val/rmse"))


# Checkpoints kept after scoring: the qualitative figure needs these two; the others are deleted
# (with their Adam state, ~130 MB each).
KEEP_CHECKPOINTS = ("table3/row8/seed{seed}", "table3/supervised/seed{seed}")


def run(args, work: Path) -> int:
    import torch

    from selfdc_core.evaluation import evaluate

    progress = not args.no_progress
    base = base_config(args, work)
    runs, evals = plan(args, base)
    datasets = {name: eval_dataset(e) for name, e in evals.items()}
    fills = {}
    for name, e in evals.items():
        scores = evaluate(None, datasets[name], e.max_depth, progress=False).scores
        fills[name] = {s.method: s.mean for s in scores}
    keep = {k.format(seed=args.seeds[0]) for k in KEEP_CHECKPOINTS}
    records, pending, labelled = [], [], set()
    for r in runs:
        cached = finished_result(r, work)
        if cached is not None:
            records.append(cached)
        elif not args.render_only:
            ensure_labels(r.cfg, progress, labelled)  # here, so that parallel runs only read them
            pending.append(r)
    threads = max(torch.get_num_threads() // args.jobs, 1)

    def finished(record: dict) -> None:
        records.append(record)
        render(args, base, evals, datasets, fills, records, work)

    if args.jobs == 1:
        for i, r in enumerate(pending, 1):
            print(f"\n== run {i}/{len(pending)}: {r.key} ({r.label})", flush=True)
            finished(run_one(r, work, evals, r.key in keep, progress))
    else:
        from concurrent.futures import ProcessPoolExecutor, as_completed
        from multiprocessing import get_context

        print(f"{len(pending)} runs in {args.jobs} processes of {threads} thread(s)", flush=True)
        with ProcessPoolExecutor(args.jobs, mp_context=get_context("spawn"),
                                 initializer=torch.set_num_threads, initargs=(threads,)) as pool:
            futures = [pool.submit(run_one, r, work, evals, r.key in keep, False) for r in pending]
            for future in as_completed(futures):
                finished(future.result())
    render(args, base, evals, datasets, fills, records, work)
    return 0


def eval_dataset(e: EvalSet):
    from selfdc_core.data.factory import build_dataset

    return build_dataset({"val": e.spec, "train": e.spec}, "val", with_gt=True)


def run_one(r: Run, work: Path, evals: dict[str, EvalSet], keep_checkpoint: bool, progress: bool) -> dict:
    """Train and score one run (in this process or a worker); only the figure's checkpoints stay."""
    print(f"== {r.key} ({r.label}): training", flush=True)
    record = train_and_score(r, work, evals, {name: eval_dataset(evals[name]) for name in r.evals}, progress)
    if not keep_checkpoint:
        for ckpt in (work / "runs" / r.key).glob("*.pt"):
            ckpt.unlink()
        shutil.rmtree(work / "runs" / r.key / "tb", ignore_errors=True)
    print(f"== {r.key}: done in {record['seconds']:.0f} s", flush=True)
    return record


def render(args, base, evals, datasets, fills, records, work) -> None:
    command = ["python training/report_synthetic.py", f"--steps {args.steps}",
               "--seeds " + " ".join(map(str, args.seeds)), f"--curve-steps {args.curve_steps}",
               *([f"--only {' '.join(args.only)}"] if args.only else []), *map(shlex.quote, args.overrides)]
    context = {"command": " ".join(command), "budget": base["budget"], "model": base["model"],
               "steps": args.steps,
               "curve_steps": args.curve_steps, "curve_points": args.curve_points,
               "image_size": [base["data"]["train"]["height"], base["data"]["train"]["width"]],
               "frames": [base["data"]["train"]["num_frames"], base["data"]["val"]["num_frames"]],
               "ablations": ABLATIONS, "full": FULL, "supervised": SUPERVISED,
               "sparsities": [label for label, _ in SPARSITIES], "room_eval": ROOM_EVAL,
               "environments": ENVIRONMENTS, "experiments": list(args.only or EXPERIMENTS),
               "max_depth": {name: e.max_depth for name, e in evals.items()}}
    figure_runs = {"SelfDC": work / "runs" / f"table3/row8/seed{args.seeds[0]}",
                   "supervised": work / "runs" / f"table3/supervised/seed{args.seeds[0]}"}
    render_outputs(Path(args.out), context, fills, records, figure_runs, datasets[ROOM_EVAL], args.figures)


if __name__ == "__main__":
    sys.exit(main())
