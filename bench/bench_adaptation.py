#!/usr/bin/env python3
"""Online adaptation, measured prequentially: does the node get better the longer it drives?

1. A SelfDC model is trained self-supervised on one synthetic environment ("room"), seen by a
   32-beam LiDAR and by an 8x8-zone ToF.
2. A stream of an unseen environment ("warehouse" by default) arrives at --rate-hz in real time.
   Every frame is completed and scored against GT BEFORE the learner may use it (prequential):
   `completer.complete()`, score, then `adapter.observe()`. The OnlineAdapter learns in its own
   thread, with the same code the node runs.
3. The same frames are completed by the frozen model, a nearest fill and a morphological fill.
   Inference latency is timed with adaptation on (during the stream) and off: the frozen model on
   every 4th frame after the same wait as in the adapted run (as a node with adaptation off runs;
   `latency_ratio`), and back to back on a CPU that never idles (`latency_ratio_back_to_back`).

    python bench/bench_adaptation.py [--stream-seconds 600] [--rate-hz 2] [--steps-per-frame 1]
Defaults: a ResNet18 SelfDC with 4 propagation steps at 64x80, trained 60 steps on "room"; a 600 s
warehouse stream at 2 Hz per sensor (1200 frames); the next frame comes once the learner has taken
one step (so the result does not depend on how loaded the machine is; `--steps-per-frame 0` paces
the stream in real time instead); one torch thread. The JSON states the mean learner step time,
to compare with the frame period. Prints a table, writes bench/results/adaptation.json and
docs/figures/adaptation.png.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
MODEL = {"backbone": "resnet18", "num_classes": 16, "prop_iterations": 4}
MAX_DEPTH = 30.0
SENSORS = {
    "lidar": {"sparse": "lidar", "lidar_beams": 32},
    "tof": {"sparse": "tof", "num_samples": 64, "tof_max_range": 20.0},
}
# lr 1e-3 and the guard's defaults (10% tolerance, 3 standard errors): a ToF slice has ~50 hidden points,
# and a guard that rolled back on their noise threw the learner's progress away.
ADAPTATION = {"optim": {"lr": 1.0e-3}, "min_gap_s": 0.0, "batch_size": 2, "swap_every": 3,
              "holdout_every": 6, "holdout_frames": 8, "buffer_frames": 200, "guard_tolerance": 0.1,
              "guard_significance": 3.0}


PACED_EVERY = 4  # the frozen model's paced pass replays every 4th frame of the stream


def train_start_checkpoint(out: Path, steps: int, size) -> Path:
    from selfdc_core.training.config import config_from_dict
    from selfdc_core.training.trainer import Trainer

    scenes = {"name": "synthetic", "num_frames": 48, "seed": 0, "height": size[0], "width": size[1],
              "environment": "room", "segments": "oracle", "cache": True}
    cfg = config_from_dict({
        "model": MODEL,
        "data": {"train": [{**scenes, **s} for s in SENSORS.values()], "val": None, "max_depth": MAX_DEPTH},
        "optim": {"lr": 2.0e-3},
        "schedule": {"milestones": [], "factors": [1.0], "warmup_epochs": 0.2},
        "train": {"epochs": 1000, "max_steps": steps, "batch_size": 4, "workers": 0, "out_dir": str(out),
                  "seed": 0, "progress": False, "log_every": 50, "amp": False},
    })
    return Trainer(cfg).fit().last_checkpoint


def render_stream(environment: str, sensor: str, frames: int, size, rate_hz: float) -> list:
    from selfdc_core.adaptation.replay import StreamFrame
    from selfdc_core.data import SyntheticScenes

    scenes = SyntheticScenes(frames, seed=7, height=size[0], width=size[1], environment=environment,
                             with_gt=True, **SENSORS[sensor])
    out = []
    for i in range(frames):
        frame = scenes.frame(i)
        out.append(StreamFrame(frame.rgb, scenes.sparse_depth(i, frame), frame.K, i / rate_hz, frame.depth))
    return out


def run_frozen(checkpoint: Path, stream: list, idle_s: list[float] | None = None
               ) -> tuple[list[float], list[float]]:
    """Per-frame RMSE and inference latency (s) of the frozen model: frames back to back, or, with
    `idle_s`, each after that long a wait (the adapted run's pace, as a node with adaptation off)."""
    from selfdc_core.adaptation.replay import frame_rmse
    from selfdc_core.inference import DepthCompleter

    completer = DepthCompleter.from_checkpoint(checkpoint, device="cpu")
    completer.warmup(size=stream[0].rgb.shape[:2])
    errors, latency = [], []
    for i, f in enumerate(stream):
        if idle_s is not None:
            time.sleep(idle_s[i])
        start = time.perf_counter()
        depth = completer.complete(f.rgb, f.sparse)
        latency.append(time.perf_counter() - start)
        errors.append(frame_rmse(depth, f.gt, MAX_DEPTH))
    return errors, latency


def run_adapted(checkpoint: Path, stream: list, config: dict, steps_per_frame: int) -> dict:
    """The stream through an OnlineAdapter: complete, score, then observe. steps_per_frame 0: in real
    time (its stamps); N > 0: the next frame comes once the learner took N steps (load-independent)."""
    from tqdm import tqdm

    from selfdc_core.adaptation import OnlineAdapter
    from selfdc_core.adaptation.replay import replay
    from selfdc_core.inference import DepthCompleter
    from selfdc_core.model_io import load_checkpoint

    completer = DepthCompleter.from_checkpoint(checkpoint, device="cpu")
    completer.warmup(size=stream[0].rgb.shape[:2])
    adapter = OnlineAdapter(completer, config, checkpoint_weights=load_checkpoint(checkpoint)["model"])
    adapter.start()
    start = time.perf_counter()
    try:
        frames = replay(completer, adapter, tqdm(stream, desc="adapting", unit="frame"),
                        speed=0.0 if steps_per_frame else 1.0, steps_per_frame=steps_per_frame,
                        max_depth=MAX_DEPTH)
    finally:
        adapter.stop(save=False)
    return {"rmse": [f.rmse for f in frames], "latency": [f.latency_s for f in frames],
            "idle_before": [f.idle_before_s for f in frames],
            "held_out": [f.held_out_error_m for f in frames], "stats": adapter.stats(),
            "duration_s": time.perf_counter() - start}


def fills(stream: list) -> dict[str, list[float]]:
    from selfdc_core.adaptation.replay import frame_rmse
    from selfdc_core.baselines import morphological_fill, nearest_fill

    return {"nearest": [frame_rmse(nearest_fill(f.sparse), f.gt, MAX_DEPTH) for f in stream],
            "morphological": [frame_rmse(morphological_fill(f.sparse, MAX_DEPTH), f.gt, MAX_DEPTH)
                              for f in stream]}


def summarise(sensor: str, frozen: list[float], lat_off: list[float], paced: dict, adapted: dict,
              baseline: dict) -> dict:
    n = len(frozen)
    on_paced = np.mean([adapted["latency"][i] for i in paced["frames"]])
    last = slice(2 * n // 3, n)
    curves = {"adapted": adapted["rmse"], "frozen": frozen, **baseline}
    held = np.array(adapted["held_out"], dtype=float)
    true = np.array(adapted["rmse"])
    ok = np.isfinite(held)
    corr = float(np.corrcoef(held[ok], true[ok])[0, 1]) if ok.sum() > 2 and held[ok].std() > 0 else None
    last_third = {k: float(np.mean(v[last])) for k, v in curves.items()}
    return {
        "sensor": sensor,
        "frames": n,
        "last_third_rmse": last_third,
        "adapted_vs_frozen": 1.0 - last_third["adapted"] / last_third["frozen"],
        "latency_ms": {"on_mean": 1e3 * float(np.mean(adapted["latency"])),
                       "off_back_to_back_mean": 1e3 * float(np.mean(lat_off)),
                       "on_p95": 1e3 * float(np.percentile(adapted["latency"], 95)),
                       "off_back_to_back_p95": 1e3 * float(np.percentile(lat_off, 95)),
                       "on_mean_paced_frames": 1e3 * float(on_paced),
                       "off_paced_mean": 1e3 * float(np.mean(paced["latency"]))},
        # Off as a node with adaptation off runs: the same frames after the same waits.
        "latency_ratio": float(on_paced / np.mean(paced["latency"])),
        # Off on a CPU kept busy by inference alone: a lower bound no node at this frame rate sees.
        "latency_ratio_back_to_back": float(np.mean(adapted["latency"]) / np.mean(lat_off)),
        "held_out_vs_true_rmse_correlation": corr,
        "learner": {k: adapted["stats"][k] for k in (
            "learner_steps", "swaps", "rollbacks", "compute_share", "frames_kept", "skipped_busy",
            "skipped_no_sparse", "skipped_degenerate_labels", "nonfinite_losses", "held_out_error_m")},
        "stream_duration_s": adapted["duration_s"],
        "mean_learner_step_s": adapted["stats"]["compute_share"] * adapted["duration_s"]
        / max(adapted["stats"]["learner_steps"], 1),
        "per_frame": {**{k: [round(x, 4) for x in v] for k, v in curves.items()},
                      "held_out_error": [None if not np.isfinite(x) else round(x, 4) for x in held]},
    }


def plot(results: dict, path: Path, rate_hz: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    variants = list(results)
    fig, axes = plt.subplots(2, len(variants), figsize=(6.5 * len(variants), 7), squeeze=False)
    for col, name in enumerate(variants):
        curves = results[name]["per_frame"]
        t = np.arange(len(curves["adapted"])) / rate_hz
        top, bottom = axes[0, col], axes[1, col]
        for key, style in (("frozen", "C3"), ("nearest", "C2"), ("morphological", "C1"), ("adapted", "C0")):
            top.plot(t, curves[key], style, lw=0.6, alpha=0.35)
            k = max(len(t) // 20, 1)
            smooth = np.convolve(curves[key], np.ones(k) / k, mode="valid")
            top.plot(t[k - 1:], smooth, style, lw=2, label=key)
        top.axvspan(t[2 * len(t) // 3], t[-1], color="0.9", zorder=0)
        top.set(title=f"{name}: RMSE per frame (grey: last third)", xlabel="stream time (s)",
                ylabel="RMSE (m)")
        top.legend(fontsize=8)
        held = np.array([np.nan if v is None else v for v in curves["held_out_error"]], dtype=float)
        bottom.plot(t, curves["adapted"], "C0", lw=0.8, label="true RMSE (GT) of the adapted model")
        bottom.plot(t, held, "k", lw=1.5, label="held-out sparse error (no GT), published weights")
        corr = results[name]["held_out_vs_true_rmse_correlation"]
        shown = "n/a" if corr is None else f"{corr:.2f}"
        bottom.set(title=f"GT-free estimate vs true error (correlation {shown})",
                   xlabel="stream time (s)", ylabel="m")
        bottom.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run_variant(sensor: str, checkpoint: Path, args) -> dict:
    frames = int(round(args.stream_seconds * args.rate_hz))
    stream = render_stream(args.environment, sensor, frames, args.size, args.rate_hz)
    frozen, lat_before = run_frozen(checkpoint, stream)
    adapted = run_adapted(checkpoint, stream, ADAPTATION, args.steps_per_frame)
    # Latency off back to back is timed before and after the stream, so that a change in the machine's
    # load during the run shows in both sides of the ratio alike.
    _, lat_after = run_frozen(checkpoint, stream[: max(len(stream) // 4, 1)])
    # And at the adapted run's pace, on every PACED_EVERY-th frame: a CPU that idles between frames runs
    # the next one slower (power and cache state), so back-to-back timing flatters "off".
    picked = list(range(0, len(stream), PACED_EVERY))
    idle = [adapted["idle_before"][i] for i in picked]
    _, lat_paced = run_frozen(checkpoint, [stream[i] for i in picked], idle)
    paced = {"frames": picked, "latency": lat_paced}
    return summarise(sensor, frozen, lat_before + lat_after, paced, adapted, fills(stream))


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stream-seconds", type=float, default=600.0, help="length of each stream (<= 600)")
    parser.add_argument("--rate-hz", type=float, default=2.0, help="frame rate of the stream")
    parser.add_argument("--size", type=int, nargs=2, default=[64, 80], metavar=("H", "W"))
    parser.add_argument("--environment", default="warehouse", choices=("warehouse", "corridor"))
    parser.add_argument("--variants", nargs="+", default=["lidar", "tof"], choices=sorted(SENSORS))
    parser.add_argument("--start-steps", type=int, default=60, help="training steps on 'room'")
    parser.add_argument("--steps-per-frame", type=int, default=1,
                        help="learner steps between two frames (0: real-time pacing at --rate-hz, so the "
                        "learner gets whatever compute the machine has left)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch intra-op threads (1: inference and learner each keep one core busy)")
    parser.add_argument("--start-checkpoint", type=Path,
                        help="reuse a model trained on 'room' (skips step 1)")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "adaptation.json")
    parser.add_argument("--figure", type=Path, default=REPO / "docs" / "figures" / "adaptation.png")
    args = parser.parse_args(argv)
    if not 0 < args.stream_seconds <= 600:
        parser.error("--stream-seconds must be in (0, 600]")
    return args


def print_table(results: dict, args) -> None:
    print(f"Prequential stream: {args.environment}, {args.stream_seconds:.0f} s at {args.rate_hz} Hz, "
          f"{args.size[0]}x{args.size[1]}; RMSE (m) over the last third")
    print(f"  {'sensor':<7}{'adapted':>9}{'frozen':>9}{'nearest':>9}{'morph.':>9}{'vs frozen':>11}"
          f"{'latency on/off':>17}{'(back to back)':>16}{'steps':>7}{'swaps':>7}{'rollb.':>7}{'share':>7}")
    for name, r in results.items():
        t, lr = r["last_third_rmse"], r["learner"]
        print(f"  {name:<7}{t['adapted']:>9.3f}{t['frozen']:>9.3f}{t['nearest']:>9.3f}"
              f"{t['morphological']:>9.3f}"
              f"{-100 * r['adapted_vs_frozen']:>10.0f}%{r['latency_ratio']:>16.2f}x"
              f"{r['latency_ratio_back_to_back']:>15.2f}x{lr['learner_steps']:>7}"
              f"{lr['swaps']:>7}{lr['rollbacks']:>7}{lr['compute_share']:>7.2f}")


def write_report(args, results: dict, context: dict) -> None:
    """The JSON (with every variant finished so far), the table and the figure."""
    first = results[args.variants[0]]
    report = {
        "device": "cpu", "torch_threads": torch.get_num_threads(), "cpu_count": os.cpu_count(),
        "load_average_1min": {"start": context["load_before"], "end": os.getloadavg()[0]},
        "resolution": list(args.size), "stream_seconds": args.stream_seconds, "rate_hz": args.rate_hz,
        "pacing": ("real time" if args.steps_per_frame == 0
                   else f"{args.steps_per_frame} learner step(s) per frame"),
        "environment": {"start": "room", "stream": args.environment}, "model": MODEL,
        "start_steps": context["start_steps"], "adaptation": ADAPTATION,
        "primary_variant": args.variants[0],
        "last_third_rmse": first["last_third_rmse"], "latency_ratio": first["latency_ratio"],
        "variants": results, "total_time_s": time.perf_counter() - context["started"],
    }
    print_table(results, args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    plot(results, args.figure, args.rate_hz)
    print(f"wrote {args.out} and {args.figure}")


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    context = {"started": time.perf_counter(), "load_before": os.getloadavg()[0]}
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = args.start_checkpoint or train_start_checkpoint(Path(tmp) / "room", args.start_steps,
                                                                     args.size)
        from selfdc_core.model_io import load_checkpoint

        context["start_steps"] = int(load_checkpoint(checkpoint)["step"])
        results = {}
        for sensor in args.variants:  # written after each variant, so a long run keeps what it measured
            results[sensor] = run_variant(sensor, checkpoint, args)
            write_report(args, results, context)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
