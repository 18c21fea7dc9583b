"""The training loop behind `training/train.py`: self-supervised SelfDC or the supervised baseline.

    trainer = Trainer(load_config("config/train_nyu.yaml", ["train.epochs=5"]))
    result = trainer.fit()            # -> FitResult(status, step, epoch, last, best, best_metric)

Self-supervised mode reads no ground truth: the training split is built with `with_gt=False`
and a training batch carrying `gt` is refused. Supervised mode (L1 + L2 on dense GT) uses the
same loop. Only rank 0 logs and writes; see `distributed.py` for torchrun.
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from selfdc_core.data.factory import build_dataset
from selfdc_core.losses import SelfDCLoss, supervised_loss
from selfdc_core.model_io import load_checkpoint, load_model_weights, save_checkpoint
from selfdc_core.models import build_model

from .config import save_config
from .distributed import DistContext, init_distributed
from .interrupt import StopRequest
from .loaders import make_loader
from .rng import capture_rng_state, restore_rng_state
from .schedule import build_optimizer, build_scheduler
from .summary import example_panel

log = logging.getLogger("selfdc.train")


class TrainingDiverged(RuntimeError):
    """The loss stayed non-finite for `train.max_nan_batches` consecutive batches."""


@dataclass
class FitResult:
    status: str  # finished | max_steps | interrupted
    epoch: int
    step: int
    last_checkpoint: Path | None
    best_checkpoint: Path | None
    best_metric: float
    nan_batches: int


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002 - datasets may draw from the global numpy RNG
    torch.manual_seed(seed)


class Trainer:
    """One training run. `resume=True` continues from `<out_dir>/last.pt`, a path from that file."""

    def __init__(self, cfg: dict, resume: bool | str | Path = False, dist_ctx: DistContext | None = None):
        self.cfg = cfg
        t = cfg["train"]
        self.ctx = dist_ctx or init_distributed(t["device"])
        self.device = self.ctx.device
        self.cuda = self.device.type == "cuda"
        self.mode = t["mode"]
        self.amp = bool(t["amp"]) and self.cuda
        self.channels_last = bool(t["channels_last"]) and self.cuda
        self.out_dir = Path(t["out_dir"])
        self.max_depth = float(cfg["data"]["max_depth"])
        seed_everything(int(t["seed"]))

        self.loss_fn = SelfDCLoss(**cfg["loss"]) if self.mode == "self_supervised" else None
        segmentation = cfg["segmentation"] if self._needs_segments() else None

        def dataset(split):
            return build_dataset(cfg["data"], split, self.mode, segmentation, cfg["bag"])

        self.train_set, self.val_set = dataset("train"), dataset("val")
        self.model = build_model(cfg["model"]).to(self.device)
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        if cfg["init"]:
            self._load_init(cfg["init"])

        loader_args = dict(workers=int(t["workers"]), seed=int(t["seed"]), pin_memory=self.cuda)
        self.train_loader = make_loader(
            self.train_set, batch_size=int(t["batch_size"]), train=True,
            num_replicas=self.ctx.world_size, rank=self.ctx.rank, **loader_args,
        )
        self.steps_per_epoch = len(self.train_loader)
        if self.steps_per_epoch == 0:
            raise ValueError(
                f"the training split has {len(self.train_set)} items, fewer than train.batch_size="
                f"{t['batch_size']} x {self.ctx.world_size} process(es): no full batch to train on"
            )
        self.val_loader = None
        if self.val_set is not None and self.ctx.is_main:
            self.val_loader = make_loader(
                self.val_set, batch_size=int(t["val_batch_size"] or t["batch_size"]), train=False,
                **loader_args,
            )

        self.optimizer = build_optimizer(self.model, cfg["optim"])
        self.scheduler = build_scheduler(self.optimizer, cfg["schedule"], self.steps_per_epoch)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp)
        self.net = self.model
        if self.ctx.enabled:
            seg_unused = getattr(self.model, "seg_decoder", None) is not None and (
                self.loss_fn is None or self.loss_fn.config["w_seg"] == 0
            )
            self.net = DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.cuda else None,
                find_unused_parameters=seg_unused,
            )

        self.epoch = self.step = self.batch_in_epoch = 0
        self.best_metric = math.inf
        self.nan_total = self.nan_run = 0
        self._last_eval_step = -1
        if resume:
            self._resume(self.out_dir / "last.pt" if resume is True else Path(resume))

        self.writer = None
        if self.ctx.is_main:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(self.out_dir / "tb"), purge_step=self.step if resume else None)

    def _needs_segments(self) -> bool:
        """Whether the configured loss reads pseudo-labels (Table 6's image variant does not)."""
        if self.loss_fn is None:
            return False
        if not self.loss_fn.needs_segments(has_logits=True):
            return False
        seg, spec = self.cfg["segmentation"], self.cfg["data"]["train"]
        specs = spec if isinstance(spec, list) else [spec]
        own_source = all({"segments_root", "segment_fallback", "segments"} & set(s) for s in specs)
        if seg["cache_root"] is None and seg["fallback"] is None and not own_source:
            raise ValueError(
                "the self-supervised loss needs segmentation pseudo-labels but neither "
                "segmentation.cache_root (filled by `python training/make_masks.py --config <this config>`) "
                "nor segmentation.fallback (e.g. felzenszwalb, computed on the fly) is set"
            )
        return True

    # ------------------------------------------------------------------ state
    def _load_init(self, path: str) -> None:
        state = load_checkpoint(path, map_location="cpu")
        weights = dict(state["model"])
        if getattr(self.model, "seg_decoder", None) is None:  # fine-tuning without the auxiliary head
            weights = {k: v for k, v in weights.items() if not k.startswith("seg_decoder.")}
        else:  # a deployment checkpoint without the head: keep this model's fresh head
            own = self.model.state_dict()
            for k, v in own.items():
                if k.startswith("seg_decoder.") and k not in weights:
                    weights[k] = v
        load_model_weights(self.model, weights, path)
        self._log(f"initialised model weights from {path} (model_config {state['model_config']})")

    def state_dict(self) -> dict:
        return {
            "model_config": self.model.config,
            "model": self.model.state_dict(),
            "config": self.cfg,
            "epoch": self.epoch,
            "step": self.step,
            "batch_in_epoch": self.batch_in_epoch,
            "steps_per_epoch": self.steps_per_epoch,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng": capture_rng_state(),
            "best_metric": self.best_metric,
            "nan_batches": self.nan_total,
        }

    def _resume(self, path: Path) -> None:
        state = load_checkpoint(path, map_location="cpu")
        load_model_weights(self.model, state["model"], path)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.epoch, self.step = int(state["epoch"]), int(state["step"])
        self.batch_in_epoch = int(state.get("batch_in_epoch", 0))
        if state.get("steps_per_epoch", self.steps_per_epoch) != self.steps_per_epoch:
            self._log(f"warning: {path} was written with {state['steps_per_epoch']} steps per epoch, "
                      f"this run has {self.steps_per_epoch}; the data order will not match exactly")
        self.best_metric = float(state.get("best_metric", math.inf))
        self.nan_total = int(state.get("nan_batches", 0))
        restore_rng_state(state["rng"])
        self._log(f"resumed from {path}: epoch {self.epoch}, step {self.step}, batch {self.batch_in_epoch}")

    def save(self, name: str = "last.pt") -> Path | None:
        if not self.ctx.is_main:
            return None
        return save_checkpoint(self.out_dir / name, self.state_dict())

    # ------------------------------------------------------------------ helpers
    def _log(self, message: str) -> None:
        if self.ctx.is_main:
            log.info(message)
            tqdm.write(message)

    def _to_device(self, batch: dict) -> dict:
        out = {}
        for key, value in batch.items():
            if isinstance(value, torch.Tensor):
                value = value.to(self.device, non_blocking=self.cuda)
                if self.channels_last and key == "rgb":
                    value = value.contiguous(memory_format=torch.channels_last)
            out[key] = value
        return out

    def _reached_max_steps(self) -> bool:
        max_steps = self.cfg["train"]["max_steps"]
        return max_steps is not None and self.step >= max_steps

    def _autocast(self):
        return torch.autocast(device_type=self.device.type, dtype=torch.float16, enabled=self.amp)

    def _compute_loss(self, outputs: dict, batch: dict) -> tuple[torch.Tensor, dict]:
        # Losses run in float32 even under AMP: top-k selections and small gradients need it.
        outputs = {k: v.float() for k, v in outputs.items()}
        if self.loss_fn is not None:
            return self.loss_fn(outputs, batch)
        if "gt" not in batch:
            raise ValueError("train.mode is supervised but the batch has no 'gt' (dense ground truth)")
        total = supervised_loss(outputs["depth"], batch["gt"])
        return total, {"supervised": total.detach()}

    # ------------------------------------------------------------------ training
    def train_step(self, batch: dict) -> dict | None:
        """One optimiser step; returns the loss parts, or None when the batch was skipped."""
        if self.mode == "self_supervised" and "gt" in batch:
            raise RuntimeError(
                "a training batch carries 'gt' but train.mode is self_supervised, which must read no "
                "ground truth; build the training split with with_gt=False"
            )
        batch = self._to_device(batch)
        self.net.train()
        with self._autocast():
            outputs = self.net(batch["rgb"], batch["sparse"])
        total, parts = self._compute_loss(outputs, batch)
        if self.ctx.any_true(not bool(torch.isfinite(total))):
            self._skip_batch(f"non-finite loss {total.item()} (parts: "
                             f"{ {k: float(v) for k, v in parts.items()} })")
            return None
        self.scaler.scale(total).backward()
        self.scaler.unscale_(self.optimizer)
        clip = self.cfg["optim"]["grad_clip"]
        norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), clip if clip else math.inf)
        if not self.amp and not bool(torch.isfinite(norm)):  # with AMP the scaler skips such steps
            self._skip_batch(f"non-finite gradient norm {float(norm)}")
            return None
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()
        self.step += 1
        self.nan_run = 0
        return {"total": total.detach(), **parts}

    def _skip_batch(self, why: str) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        self.nan_total += 1
        self.nan_run += 1
        limit = int(self.cfg["train"]["max_nan_batches"])
        self._log(f"step {self.step}: skipped batch {self.batch_in_epoch} of epoch {self.epoch}: {why} "
                  f"({self.nan_run} in a row, {self.nan_total} in total)")
        if self.writer is not None:
            self.writer.add_scalar("train/skipped_batches", self.nan_total, self.step)
        if self.nan_run >= limit:
            raise TrainingDiverged(
                f"training stopped: the loss was non-finite for {self.nan_run} consecutive batches "
                f"(train.max_nan_batches={limit}) at epoch {self.epoch}, step {self.step}. Lower optim.lr, "
                f"set optim.grad_clip, or check the data (sparse depth in metres, no NaN/Inf)."
            )

    def fit(self) -> FitResult:
        t = self.cfg["train"]
        if self.ctx.is_main:
            save_config(self.cfg, self.out_dir / "config.yaml")
        self._log(f"training on {self.device} x{self.ctx.world_size}: {len(self.train_set)} items, "
                  f"{self.steps_per_epoch} steps/epoch, mode {self.mode}, output {self.out_dir}")
        status = "finished"
        try:
            with StopRequest() as stop:
                while self.epoch < int(t["epochs"]) and status == "finished":
                    status = self._run_epoch(stop)
                    if status == "finished":  # the epoch ran to its end
                        self.epoch += 1
                        self.batch_in_epoch = 0
                        self._end_of_period(eval_now=t["eval_every"] is None)
                        if self._reached_max_steps():
                            status = "max_steps"
                if status != "finished":
                    self.save("last.pt")  # mid-epoch state: --resume continues from here
                if status == "interrupted":
                    self._log(f"{stop.name} received: saved {self.out_dir / 'last.pt'} at epoch "
                              f"{self.epoch}, step {self.step}; continue with --resume")
                elif status == "max_steps" and self._last_eval_step != self.step:
                    self._end_of_period(eval_now=True, save_last=False)
        finally:
            if self.writer is not None:
                self.writer.close()
        best = self.out_dir / "best.pt"
        return FitResult(status, self.epoch, self.step, self.out_dir / "last.pt",
                         best if best.exists() else None, self.best_metric, self.nan_total)

    def _run_epoch(self, stop: StopRequest) -> str:
        t = self.cfg["train"]
        sampler = self.train_loader.sampler
        sampler.start(self.epoch, self.batch_in_epoch)
        bar = tqdm(total=self.steps_per_epoch, initial=self.batch_in_epoch, desc=f"epoch {self.epoch}",
                   unit="batch", disable=not (self.ctx.is_main and t["progress"]), dynamic_ncols=True)
        eval_every, log_every = t["eval_every"], max(int(t["log_every"]), 1)
        tick, images = time.perf_counter(), 0
        try:
            iterator = iter(self.train_loader)
            while self.batch_in_epoch < self.steps_per_epoch:
                try:
                    batch = next(iterator)
                except StopIteration:
                    break
                except RuntimeError:
                    if stop.requested:  # Ctrl-C also reached (and ended) the loader's workers
                        return "interrupted"
                    raise
                parts = self.train_step(batch)
                self.batch_in_epoch += 1
                images += batch["rgb"].shape[0] * self.ctx.world_size
                bar.update(1)
                if parts is not None and self.ctx.is_main and self.step % log_every == 0:
                    elapsed = time.perf_counter() - tick
                    self._log_scalars(parts, images / max(elapsed, 1e-9))
                    bar.set_postfix(loss=f"{float(parts['total']):.4f}")
                    tick, images = time.perf_counter(), 0
                last_batch = self.batch_in_epoch >= self.steps_per_epoch
                if eval_every and parts is not None and self.step % eval_every == 0 and not last_batch:
                    self._end_of_period(eval_now=True)
                if self.ctx.any_true(stop.requested):
                    return "interrupted"
                if self._reached_max_steps() and not last_batch:
                    return "max_steps"
        finally:
            bar.close()
        return "finished"

    def _log_scalars(self, parts: dict, images_per_s: float) -> None:
        for name, value in parts.items():
            self.writer.add_scalar(f"train/loss_{name}", float(value), self.step)
        self.writer.add_scalar("train/lr", self.optimizer.param_groups[0]["lr"], self.step)
        self.writer.add_scalar("train/images_per_s", images_per_s, self.step)

    def _end_of_period(self, eval_now: bool, save_last: bool = True) -> None:
        """Validate (when due and configured), then write last.pt and, if improved, best.pt."""
        if save_last:
            self.save("last.pt")
        if eval_now and self.ctx.is_main and self.val_loader is not None:
            metrics = self.validate()
            self._last_eval_step = self.step
            key = "rmse" if "rmse" in metrics else "loss_total"
            if metrics.get(key, math.inf) < self.best_metric:
                self.best_metric = metrics[key]
                self.save("best.pt")
            shown = ", ".join(f"{k} {v:.4f}" for k, v in metrics.items())
            self._log(f"validation at epoch {self.epoch}, step {self.step}: {shown}")
        self.ctx.barrier()

    # ------------------------------------------------------------------ validation
    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """GT metrics when the validation split has GT, else its self-supervised losses (rank 0)."""
        from selfdc_core.metrics import MetricAccumulator

        model, was_training = self.model, self.model.training
        model.eval()
        gt_metrics = MetricAccumulator(self.max_depth)
        sums: dict[str, float] = defaultdict(float)
        counts: dict[str, int] = defaultdict(int)
        limit = self.cfg["train"]["max_val_batches"]
        self.val_loader.sampler.start(0)
        try:
            for i, batch in enumerate(self.val_loader):
                if limit is not None and i >= limit:
                    break
                batch = self._to_device(batch)
                with self._autocast():
                    outputs = model(batch["rgb"], batch["sparse"])
                pred = outputs["depth"].float()
                n = pred.shape[0]
                if "gt" in batch:
                    gt_metrics.update(pred, batch["gt"])
                if self.loss_fn is not None and ("segments" in batch or "gt" not in batch):
                    total, parts = self.loss_fn({k: v.float() for k, v in outputs.items()}, batch)
                    for name, value in {"total": total, **parts}.items():
                        sums[f"loss_{name}"] += float(value) * n
                        counts[f"loss_{name}"] += n
                if i == 0 and self.writer is not None and self.cfg["train"]["num_images"] > 0:
                    panel = example_panel(batch, pred, self.cfg["train"]["num_images"], self.max_depth)
                    self.writer.add_image("val/rgb_sparse_prediction_error", panel, self.step,
                                          dataformats="HWC")
        finally:
            model.train(was_training)
        metrics = gt_metrics.compute() if gt_metrics.count else {}
        metrics.update({k: sums[k] / counts[k] for k in sums if counts[k]})
        if self.writer is not None:
            for name, value in metrics.items():
                self.writer.add_scalar(f"val/{name}", value, self.step)
        return metrics
