#!/usr/bin/env python3
"""Replay a rosbag2 through the node's online learner, in recorded order, without ROS.

Every synchronised frame of the bag is completed, scored against the bag's GT depth topic when it
has one, and then offered to the same OnlineAdapter the node runs with `adaptation.enabled: true`
(its learner thread, replay buffer, drift guard and weight swaps). The adapted weights are written
to --output as a checkpoint that the node and training/evaluate.py load; a JSON summary with the
learner's counters (and the per-frame RMSE when the bag has GT) is written next to it.

examples:
  python training/adapt_bag.py field_bag --init runs/nyu/best.pt --output runs/field_adapted.pt
  python training/adapt_bag.py field_bag --init best.pt --output adapted.pt --speed 1.0      # recorded pace
  python training/adapt_bag.py field_bag --init best.pt --output adapted.pt --steps-per-frame 2 \\
      --set optim.lr=5e-4 --set min_gap_s=0.2 --sparse-topic /tof/depth

--set takes the node's adaptation.* keys without the prefix (see config/completion.yaml), e.g.
buffer_frames=64, guard_significance=2.0, l2sp_weight=1e-3, loss.w_seg=0.1, optim.lr=1e-4.
The loss defaults to the one stored in the --init checkpoint (the objective it was trained with).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from pathlib import Path


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("bag", help="rosbag2 directory (sqlite3 or mcap)")
    parser.add_argument("--init", required=True, help="checkpoint to start from (training/train.py output)")
    parser.add_argument("--output", required=True, type=Path, help="where to write the adapted weights (.pt)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="an adaptation setting (repeatable), e.g. optim.lr=5e-4")
    parser.add_argument("--speed", type=float, default=0.0,
                        help="replay pace: 1.0 = as recorded, 2.0 = twice as fast, 0 = no waiting (default)")
    parser.add_argument("--steps-per-frame", type=int, default=1,
                        help="learner steps to wait for after each frame (0: do not wait); default 1")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    parser.add_argument("--input-size", type=int, nargs=2, metavar=("H", "W"),
                        help="model input size (default: the camera resolution), as the node's "
                        "input_height/input_width")
    parser.add_argument("--image-topic", default="/camera/image")
    parser.add_argument("--camera-info-topic", default="/camera/camera_info")
    parser.add_argument("--sparse-topic", default="/lidar/points", help="PointCloud2 (LiDAR) or Image (ToF)")
    parser.add_argument("--gt-topic", default="/camera/depth_gt", help="optional GT depth, only for scoring")
    parser.add_argument("--sync-slop", type=float, default=0.05, help="the node's sync.slop (s)")
    parser.add_argument("--typestore", default="humble", help="message definitions for bags without them")
    parser.add_argument("--cache-root", type=Path, help="extraction cache (default: next to the bag)")
    parser.add_argument("--max-depth", type=float, default=80.0, help="GT depths beyond this are not scored")
    return parser.parse_args(argv)


def settings_from(pairs: list[str]) -> dict:
    """`a.b=value` strings -> a nested dict, values typed as YAML (as training config overrides)."""
    from selfdc_core.training.config import apply_override

    settings: dict = {}
    for pair in pairs:
        node = settings
        for key in pair.split("=", 1)[0].split(".")[:-1]:
            node = node.setdefault(key, {})
        apply_override(settings, pair)
    return settings


def stream_frames(args):
    """The bag's synchronised frames in recorded order (the rosbag dataset's extraction and cache)."""
    from tqdm import tqdm

    from selfdc_core.adaptation.replay import StreamFrame
    from selfdc_core.data.rosbag import RosbagDataset

    dataset = RosbagDataset(args.bag, split="all", val_fraction=0.0, cache_root=args.cache_root,
                            image_topic=args.image_topic, camera_info_topic=args.camera_info_topic,
                            sparse_topic=args.sparse_topic, gt_topic=args.gt_topic, typestore=args.typestore,
                            sync_slop=args.sync_slop, with_gt="auto", augment=False)
    for i in tqdm(range(len(dataset)), desc="replaying", unit="frame"):
        frame = dataset.read(i)
        yield StreamFrame(frame.rgb, frame.sparse, frame.K, dataset.stamp(i) / 1e9, frame.gt)


def summary(results, stats: dict, args) -> dict:
    import numpy as np

    errors = np.array([r.rmse for r in results])
    n = len(results)
    thirds = {}
    if n and np.isfinite(errors).any():
        thirds = {name: float(np.nanmean(errors[s])) for name, s in
                  (("first_third", slice(0, max(n // 3, 1))), ("last_third", slice(2 * n // 3, n)))}
    return {"bag": str(args.bag), "init": str(args.init), "output": str(args.output), "frames": n,
            "rmse": thirds, "learner": stats,
            "per_frame": [{"stamp": r.stamp, "rmse": None if math.isnan(r.rmse) else r.rmse,
                           "held_out_error_m": None if math.isnan(r.held_out_error_m) else r.held_out_error_m,
                           "learner_steps": r.learner_steps, "swaps": r.swaps} for r in results]}


def run(args) -> dict:
    from selfdc_core.adaptation import OnlineAdapter, loss_of_checkpoint
    from selfdc_core.adaptation.replay import replay
    from selfdc_core.inference import DepthCompleter
    from selfdc_core.model_io import load_checkpoint

    completer = DepthCompleter.from_checkpoint(args.init, device=args.device, input_size=args.input_size)
    state = load_checkpoint(args.init)
    settings = settings_from(args.set)
    settings.setdefault("loss", loss_of_checkpoint(state))  # the objective the model was trained with
    adapter = OnlineAdapter(completer, settings, checkpoint_weights=state["model"])
    adapter.start()
    try:
        results = replay(completer, adapter, stream_frames(args), speed=args.speed,
                         steps_per_frame=args.steps_per_frame, max_depth=args.max_depth)
    finally:
        adapter.stop(save=False)
    stats = adapter.stats()
    if stats["error"]:
        raise RuntimeError(f"the learner failed: {stats['error']}")
    adapter.save(args.output)
    return summary(results, adapter.stats(), args)


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    from selfdc_core.data.rosbag import BagError, ExtractionError
    from selfdc_core.model_io import CheckpointError

    try:
        report = run(args)
    except (BagError, ExtractionError, CheckpointError, FileNotFoundError, ValueError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    path = args.output.with_suffix(".json")
    path.write_text(json.dumps(report, indent=1) + "\n")
    learner = report["learner"]
    print(f"{report['frames']} frames replayed: {learner['learner_steps']} learner steps, "
          f"{learner['swaps']} swaps, {learner['rollbacks']} rollbacks, "
          f"held-out sparse error {learner['held_out_error_m']:.3f} m")
    if report["rmse"]:
        print(f"RMSE vs GT: first third {report['rmse']['first_third']:.3f} m, "
              f"last third {report['rmse']['last_third']:.3f} m")
    print(f"wrote {args.output} and {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
