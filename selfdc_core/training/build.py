"""Everything a training run is built from: datasets, model, loaders, optimiser, DDP wrapper.

`Trainer` asks these builders once and keeps only the loop; tools that need the same datasets as a
run (the demo, the pseudo-label maker, reports) call `build_split` with the run's config.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.nn.parallel import DistributedDataParallel

from selfdc_core.data.factory import build_dataset
from selfdc_core.data.loader import make_loader
from selfdc_core.models import build_model

from .distributed import DistContext
from .objective import build_objective
from .schedule import build_optimizer, build_scheduler

_OWN_SEGMENT_KEYS = {"segments_root", "segment_fallback", "segments"}


def check_segment_source(cfg: dict) -> None:
    """Raise when the objective reads pseudo-labels but no source for them is configured."""
    seg, spec = cfg["segmentation"], cfg["data"]["train"]
    specs = spec if isinstance(spec, list) else [spec]
    own_source = all(_OWN_SEGMENT_KEYS & set(s) for s in specs)
    if seg["cache_root"] is None and seg["fallback"] is None and not own_source:
        raise ValueError(
            "the self-supervised loss needs segmentation pseudo-labels but neither "
            "segmentation.cache_root (filled by `python training/make_masks.py --config <this config>`) "
            "nor segmentation.fallback (e.g. felzenszwalb, computed on the fly) is set"
        )


def build_split(cfg: dict, split: str, objective=None, with_segments: bool = True):
    """The dataset of `split` as the run described by `cfg` reads it (None when not configured).

    The objective (built from `cfg` when not given) decides whether the training split carries
    ground truth and whether pseudo-labels are attached; `with_segments=False` leaves them out
    (e.g. for the tool that creates them)."""
    objective = objective or build_objective(cfg)
    segments = None
    if with_segments and objective.needs_segments:
        check_segment_source(cfg)
        segments = cfg["segmentation"]
    with_gt = objective.reads_gt if split == "train" else None
    return build_dataset(cfg["data"], split, with_gt, segments, cfg["bag"])


def build_network(cfg: dict, device: torch.device, channels_last: bool) -> torch.nn.Module:
    model = build_model(cfg["model"]).to(device)
    return model.to(memory_format=torch.channels_last) if channels_last else model


@dataclass
class Loaders:
    train: torch.utils.data.DataLoader
    val: torch.utils.data.DataLoader | None
    steps_per_epoch: int


def build_loaders(cfg: dict, train_set, val_set, ctx: DistContext) -> Loaders:
    """Training loader (this rank's shard) and, on rank 0, the validation loader."""
    t = cfg["train"]
    common = dict(workers=int(t["workers"]), seed=int(t["seed"]), pin_memory=ctx.device.type == "cuda")
    train = make_loader(train_set, batch_size=int(t["batch_size"]), train=True,
                        num_replicas=ctx.world_size, rank=ctx.rank, **common)
    if len(train) == 0:
        raise ValueError(
            f"the training split has {len(train_set)} items, fewer than train.batch_size="
            f"{t['batch_size']} x {ctx.world_size} process(es): no full batch to train on"
        )
    val = None
    if val_set is not None and ctx.is_main:
        val = make_loader(val_set, batch_size=int(t["val_batch_size"] or t["batch_size"]), train=False,
                          **common)
    return Loaders(train, val, len(train))


def build_optimisation(cfg: dict, model: torch.nn.Module, steps_per_epoch: int, loss_scaling: bool):
    """(optimizer, scheduler, grad scaler) for `model`; the scaler is active for float16 training."""
    optimizer = build_optimizer(model, cfg["optim"])
    scheduler = build_scheduler(optimizer, cfg["schedule"], steps_per_epoch)
    return optimizer, scheduler, torch.amp.GradScaler("cuda", enabled=loss_scaling)


def wrap_distributed(model: torch.nn.Module, ctx: DistContext, objective) -> torch.nn.Module:
    """DDP around `model` when the run has several processes; the bare model otherwise."""
    if not ctx.enabled:
        return model
    seg_unused = getattr(model, "seg_decoder", None) is not None and not objective.trains_seg_branch
    device_ids = [ctx.device.index] if ctx.device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=device_ids, find_unused_parameters=seg_unused)
