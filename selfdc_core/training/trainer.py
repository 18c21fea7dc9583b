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
from tqdm import tqdm

from selfdc_core.devices import autocast_dtype

from .build import build_loaders, build_network, build_optimisation, build_split, wrap_distributed
from .config import save_config
from .distributed import DistContext, init_distributed
from .interrupt import StopRequest
from .objective import build_objective
from .sanity import GradientSanityCheck
from .state import (
    OutputError,
    Progress,
    load_initial_weights,
    prepare_out_dir,
    restore_training_state,
    training_state,
    write_checkpoint,
)
from .summary import example_panel

log = logging.getLogger("selfdc.train")


class TrainingDiverged(RuntimeError):
    """The loss stayed non-finite for `train.max_nan_batches` consecutive batches."""


@dataclass
class FitResult:
    status: str  # finished | max_steps | interrupted | already_done
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
    """One training run. `resume=True` continues from `<out_dir>/last.pt`, a path from that file.

    The objective (`objective.py`) computes the loss and says what the data must carry; the
    builders (`build.py`) make the datasets, model, loaders and optimiser; `state.py` saves and
    restores the run. The Trainer keeps the loop."""

    def __init__(self, cfg: dict, resume: bool | str | Path = False, dist_ctx: DistContext | None = None):
        self.cfg = cfg
        t = cfg["train"]
        self.ctx = dist_ctx or init_distributed(t["device"])
        self.device = self.ctx.device
        self.cuda = self.device.type == "cuda"
        # Mixed precision: float16 with loss scaling on CUDA, bfloat16 (no scaling needed) on CPUs with
        # native bfloat16 units; float32 elsewhere or with amp off.
        self.amp_dtype = autocast_dtype("auto" if t["amp"] else "float32", self.device)
        self.loss_scaling = self.amp_dtype == torch.float16
        self.channels_last = bool(t["channels_last"])
        self.out_dir = Path(t["out_dir"])
        self.max_depth = float(cfg["data"]["max_depth"])
        seed_everything(int(t["seed"]))

        self.objective = build_objective(cfg)
        self.train_set = build_split(cfg, "train", self.objective)
        self.val_set = build_split(cfg, "val", self.objective)
        self.model = build_network(cfg, self.device, self.channels_last)
        if cfg["init"]:
            model_config = load_initial_weights(self.model, cfg["init"])
            self._log(f"initialised model weights from {cfg['init']} (model_config {model_config})")
        loaders = build_loaders(cfg, self.train_set, self.val_set, self.ctx)
        self.train_loader, self.val_loader = loaders.train, loaders.val
        self.steps_per_epoch = loaders.steps_per_epoch
        self.optimizer, self.scheduler, self.scaler = build_optimisation(
            cfg, self.model, self.steps_per_epoch, self.loss_scaling
        )
        self.net = wrap_distributed(self.model, self.ctx, self.objective)

        self.progress = Progress()
        self.nan_run = 0
        self._last_eval_step = -1
        ignore = () if self.objective.trains_seg_branch else ("seg_decoder",)
        self.sanity = GradientSanityCheck(self.model, int(t["sanity_steps"]), ignore=ignore)
        if self.ctx.is_main:
            for tmp in prepare_out_dir(self.out_dir):
                self._log(f"removed {tmp.name}, left by an interrupted checkpoint write")
        if resume:
            self._resume(self.out_dir / "last.pt" if resume is True else Path(resume))

        self.writer = None
        if self.ctx.is_main:
            from torch.utils.tensorboard import SummaryWriter

            purge_step = self.progress.step if resume else None
            try:
                self.writer = SummaryWriter(str(self.out_dir / "tb"), purge_step=purge_step)
            except OSError as exc:
                raise OutputError(self.out_dir / "tb", exc) from exc

    # Read-only views of `progress` (the counters a checkpoint saves).
    @property
    def epoch(self) -> int:
        return self.progress.epoch

    @property
    def step(self) -> int:
        return self.progress.step

    @property
    def batch_in_epoch(self) -> int:
        return self.progress.batch_in_epoch

    @property
    def nan_total(self) -> int:
        return self.progress.nan_batches

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict:
        return training_state(self.cfg, self.model, self.progress, self.optimizer, self.scheduler,
                              self.scaler, self.steps_per_epoch)

    def _resume(self, path: Path) -> None:
        self.progress, steps_per_epoch = restore_training_state(
            path, self.model, self.optimizer, self.scheduler, self.scaler
        )
        if steps_per_epoch not in (None, self.steps_per_epoch):
            self._log(f"warning: {path} was written with {steps_per_epoch} steps per epoch, "
                      f"this run has {self.steps_per_epoch}; the data order will not match exactly")
        p = self.progress
        self._log(f"resumed from {path}: epoch {p.epoch}, step {p.step}, batch {p.batch_in_epoch}")

    def save(self, name: str = "last.pt") -> Path | None:
        if not self.ctx.is_main:
            return None
        return write_checkpoint(self.out_dir / name, self.state_dict())

    def _already_done(self) -> bool:
        return self.progress.epoch >= int(self.cfg["train"]["epochs"]) or self._reached_max_steps()

    # ------------------------------------------------------------------ helpers
    def _log(self, message: str) -> None:
        if self.ctx.is_main:
            log.info(message)
            tqdm.write(message)

    def _warn(self, message: str) -> None:
        if self.ctx.is_main:
            log.warning(message)
            tqdm.write(f"warning: {message}")

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
        return max_steps is not None and self.progress.step >= max_steps

    def _autocast(self):
        dtype = self.amp_dtype
        return torch.autocast(device_type=self.device.type, dtype=dtype, enabled=dtype is not None)

    # ------------------------------------------------------------------ training
    def train_step(self, batch: dict) -> dict | None:
        """One optimiser step; returns the loss parts, or None when the batch was skipped."""
        if not self.objective.reads_gt and "gt" in batch:
            raise RuntimeError(
                "a training batch carries 'gt' but train.mode is self_supervised, which must read no "
                "ground truth; build the training split with with_gt=False"
            )
        batch = self._to_device(batch)
        self.net.train()
        with self._autocast():
            outputs = self.net(batch["rgb"], batch["sparse"])
        total, parts = self.objective(outputs, batch)
        if self.ctx.any_true(not bool(torch.isfinite(total))):
            self._skip_batch(f"non-finite loss {total.item()} (parts: "
                             f"{ {k: float(v) for k, v in parts.items()} })")
            return None
        self.scaler.scale(total).backward()
        self.scaler.unscale_(self.optimizer)
        clip = self.cfg["optim"]["grad_clip"]
        norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), clip if clip else math.inf)
        if not self.loss_scaling and not bool(torch.isfinite(norm)):  # else the scaler skips such steps
            self._skip_batch(f"non-finite gradient norm {float(norm)}")
            return None
        if self.sanity.active:
            for warning in self.sanity.observe(total):
                self._warn(warning)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()
        self.progress.step += 1
        self.nan_run = 0
        return {"total": total.detach(), **parts}

    def _skip_batch(self, why: str) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        self.progress.nan_batches += 1
        self.nan_run += 1
        limit = int(self.cfg["train"]["max_nan_batches"])
        p = self.progress
        self._log(f"step {p.step}: skipped batch {p.batch_in_epoch} of epoch {p.epoch}: {why} "
                  f"({self.nan_run} in a row, {p.nan_batches} in total)")
        if self.writer is not None:
            self.writer.add_scalar("train/skipped_batches", self.progress.nan_batches, self.progress.step)
        if self.nan_run >= limit:
            raise TrainingDiverged(
                f"training stopped: the loss was non-finite for {self.nan_run} consecutive batches "
                f"(train.max_nan_batches={limit}) at epoch {p.epoch}, step {p.step}. Lower optim.lr, "
                f"set optim.grad_clip, or check the data (sparse depth in metres, no NaN/Inf)."
            )

    def _result(self, status: str) -> FitResult:
        p, best = self.progress, self.out_dir / "best.pt"
        return FitResult(status, p.epoch, p.step, self.out_dir / "last.pt", best if best.exists() else None,
                         p.best_metric, p.nan_batches)

    def fit(self) -> FitResult:
        t = self.cfg["train"]
        if self._already_done():
            p = self.progress
            self._log(f"nothing to train: the run in {self.out_dir} already reached epoch {p.epoch} of "
                      f"{t['epochs']}, step {p.step} (train.max_steps={t['max_steps']}); raise train.epochs "
                      f"or train.max_steps to continue it")
            if self.writer is not None:
                self.writer.close()
            return self._result("already_done")
        if self.ctx.is_main:
            try:
                save_config(self.cfg, self.out_dir / "config.yaml")
            except OSError as exc:
                raise OutputError(self.out_dir / "config.yaml", exc) from exc
        self._log(f"training on {self.device} x{self.ctx.world_size}: {len(self.train_set)} items, "
                  f"{self.steps_per_epoch} steps/epoch, {self.objective.name}, output {self.out_dir}")
        status = "finished"
        try:
            with StopRequest() as stop:
                while self.progress.epoch < int(t["epochs"]) and status == "finished":
                    status = self._run_epoch(stop)
                    if status == "finished":  # the epoch ran to its end
                        self.progress.epoch += 1
                        self.progress.batch_in_epoch = 0
                        self._end_of_period(eval_now=t["eval_every"] is None)
                        if self._reached_max_steps():
                            status = "max_steps"
                if status != "finished":
                    self.save("last.pt")  # mid-epoch state: --resume continues from here
                if status == "interrupted":
                    self._log(f"{stop.name} received: saved {self.out_dir / 'last.pt'} at epoch "
                              f"{self.progress.epoch}, step {self.progress.step}; continue with --resume")
                elif status == "max_steps" and self._last_eval_step != self.progress.step:
                    self._end_of_period(eval_now=True, save_last=False)
        finally:
            if self.writer is not None:
                self.writer.close()
        return self._result(status)

    def _run_epoch(self, stop: StopRequest) -> str:
        t = self.cfg["train"]
        sampler = self.train_loader.sampler
        sampler.start(self.progress.epoch, self.progress.batch_in_epoch)
        bar = tqdm(total=self.steps_per_epoch, initial=self.progress.batch_in_epoch,
                   desc=f"epoch {self.progress.epoch}", unit="batch",
                   disable=not (self.ctx.is_main and t["progress"]), dynamic_ncols=True)
        eval_every, log_every = t["eval_every"], max(int(t["log_every"]), 1)
        tick, images = time.perf_counter(), 0
        try:
            iterator = iter(self.train_loader)
            while self.progress.batch_in_epoch < self.steps_per_epoch:
                try:
                    batch = next(iterator)
                except StopIteration:
                    break
                except RuntimeError:
                    if stop.requested:  # Ctrl-C also reached (and ended) the loader's workers
                        return "interrupted"
                    raise
                parts = self.train_step(batch)
                self.progress.batch_in_epoch += 1
                images += batch["rgb"].shape[0] * self.ctx.world_size
                bar.update(1)
                if parts is not None and self.ctx.is_main and self.progress.step % log_every == 0:
                    elapsed = time.perf_counter() - tick
                    self._log_scalars(parts, images / max(elapsed, 1e-9))
                    bar.set_postfix(loss=f"{float(parts['total']):.4f}")
                    tick, images = time.perf_counter(), 0
                last_batch = self.progress.batch_in_epoch >= self.steps_per_epoch
                due = eval_every and parts is not None and self.progress.step % eval_every == 0
                if due and not last_batch:
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
            self.writer.add_scalar(f"train/loss_{name}", float(value), self.progress.step)
        self.writer.add_scalar("train/lr", self.optimizer.param_groups[0]["lr"], self.progress.step)
        self.writer.add_scalar("train/images_per_s", images_per_s, self.progress.step)

    def _end_of_period(self, eval_now: bool, save_last: bool = True) -> None:
        """Validate (when due and configured), then write last.pt and, if improved, best.pt."""
        if save_last:
            self.save("last.pt")
        if eval_now and self.ctx.is_main and self.val_loader is not None:
            metrics = self.validate()
            self._last_eval_step = self.progress.step
            key = "rmse" if "rmse" in metrics else "loss_total"
            if metrics.get(key, math.inf) < self.progress.best_metric:
                self.progress.best_metric = metrics[key]
                self.save("best.pt")
            shown = ", ".join(f"{k} {v:.4f}" for k, v in metrics.items())
            self._log(f"validation at epoch {self.progress.epoch}, step {self.progress.step}: {shown}")
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
                scored = self.objective.validation_loss(outputs, batch)
                if scored is not None:
                    total, parts = scored
                    for name, value in {"total": total, **parts}.items():
                        sums[f"loss_{name}"] += float(value) * n
                        counts[f"loss_{name}"] += n
                if i == 0 and self.writer is not None and self.cfg["train"]["num_images"] > 0:
                    panel = example_panel(batch, pred, self.cfg["train"]["num_images"], self.max_depth)
                    self.writer.add_image("val/rgb_sparse_prediction_error", panel, self.progress.step,
                                          dataformats="HWC")
        finally:
            model.train(was_training)
        metrics = gt_metrics.compute() if gt_metrics.count else {}
        metrics.update({k: sums[k] / counts[k] for k in sums if counts[k]})
        if self.writer is not None:
            for name, value in metrics.items():
                self.writer.add_scalar(f"val/{name}", value, self.progress.step)
        return metrics
