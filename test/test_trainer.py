"""The trainer on tiny synthetic frames: outputs, no-GT guarantee, NaN handling, exact resume, signals."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from selfdc_core.devices import native_bfloat16_cpu
from selfdc_core.model_io import CheckpointError, load_checkpoint
from selfdc_core.training.config import load_config
from selfdc_core.training.trainer import Trainer, TrainingDiverged

REPO = Path(__file__).resolve().parents[1]


def _val_spec():
    return {"name": "synthetic", "num_frames": 2, "seed": 5, "height": 32, "width": 48, "sparse": "random",
            "num_samples": 60, "cache": True}


def test_run_writes_checkpoints_config_and_tensorboard(tmp_path, tiny_train_config):
    cfg = tiny_train_config(tmp_path / "run", data={"val": _val_spec()}, train={"epochs": 1})
    result = Trainer(cfg).fit()
    assert result.status == "finished" and result.step == 4 and result.epoch == 1
    assert result.best_checkpoint == tmp_path / "run" / "best.pt"
    assert torch.isfinite(torch.tensor(result.best_metric))  # validation RMSE against synthetic GT
    state = load_checkpoint(result.last_checkpoint)
    assert state["step"] == 4 and state["model_config"]["backbone"] == "resnet18"
    assert load_config(tmp_path / "run" / "config.yaml") == cfg  # the exact merged config
    events = b"".join(p.read_bytes() for p in (tmp_path / "run" / "tb").glob("events.out.tfevents.*"))
    tags = (b"train/loss_total", b"train/loss_gc", b"train/lr", b"val/rmse",
            b"val/rgb_sparse_prediction_error")
    for tag in tags:
        assert tag in events


def test_self_supervised_training_reads_no_ground_truth(tmp_path, tiny_train_config):
    trainer = Trainer(tiny_train_config(tmp_path))
    assert trainer.train_set.with_gt is False
    batch = next(iter(trainer.train_loader))
    assert "gt" not in batch and "segments" in batch
    batch["gt"] = batch["sparse"].clone()
    with pytest.raises(RuntimeError, match="ground truth"):
        trainer.train_step(batch)


def test_amp_trains_in_bfloat16_on_cpus_with_native_units(tmp_path, tiny_train_config):
    mixed = Trainer(tiny_train_config(tmp_path / "on", train={"amp": True}))
    assert mixed.amp_dtype == (torch.bfloat16 if native_bfloat16_cpu() else None)
    assert not mixed.loss_scaling  # float16 loss scaling is a CUDA path
    parts = mixed.train_step(next(iter(mixed.train_loader)))
    assert parts is not None and torch.isfinite(parts["total"])
    assert Trainer(tiny_train_config(tmp_path / "off", train={"amp": False})).amp_dtype is None


def test_supervised_baseline_uses_dense_gt(tmp_path, tiny_train_config):
    cfg = tiny_train_config(tmp_path, train={"mode": "supervised", "max_steps": 2},
                            model={"include_segmentation": False})
    trainer = Trainer(cfg)
    assert trainer.train_set.with_gt is True
    batch = next(iter(trainer.train_loader))
    parts = trainer.train_step(batch)
    assert set(parts) == {"total", "supervised"} and torch.isfinite(parts["total"])


def test_missing_pseudo_label_source_is_a_clear_error(tmp_path, tiny_train_config):
    cfg = tiny_train_config(tmp_path)
    del cfg["data"]["train"]["segments"]
    with pytest.raises(ValueError, match="make_masks.py"):
        Trainer(cfg)


def test_nan_batches_are_skipped_then_stop_training(tmp_path, tiny_train_config):
    trainer = Trainer(tiny_train_config(tmp_path, train={"max_nan_batches": 3, "max_steps": 3}))
    real_loss, calls = trainer.objective.loss.forward, {"n": 0}

    def flaky(outputs, batch):
        calls["n"] += 1
        total, parts = real_loss(outputs, batch)
        return (total * float("nan"), parts) if calls["n"] <= 2 else (total, parts)

    trainer.objective.loss.forward = flaky
    before = {k: v.detach().clone() for k, v in trainer.model.named_parameters()}
    batches = iter(trainer.train_loader)
    assert trainer.train_step(next(batches)) is None and trainer.train_step(next(batches)) is None
    assert trainer.step == 0 and trainer.nan_total == 2
    assert all(torch.equal(before[k], v) for k, v in trainer.model.named_parameters())  # no update
    assert trainer.train_step(next(batches)) is not None and trainer.nan_run == 0

    trainer.objective.loss.forward = lambda o, b: (torch.tensor(float("inf"), requires_grad=True), {})
    with pytest.raises(TrainingDiverged, match="3 consecutive batches.*max_nan_batches=3"):
        trainer.fit()


def _weights(path: Path) -> dict:
    return load_checkpoint(path)["model"]


def test_resume_reproduces_an_uninterrupted_run_exactly(tmp_path, tiny_train_config):
    # 6 frames, batch 2 -> 3 steps per epoch; 7 steps cross two epoch boundaries and the lr
    # milestone, the split run stops mid-epoch (step 4 = epoch 1, batch 1).
    def config(out, max_steps):
        return tiny_train_config(out, data={"train": {"num_frames": 6}},
                                 train={"epochs": 3, "max_steps": max_steps})

    straight = Trainer(config(tmp_path / "a", 7)).fit()
    first = Trainer(config(tmp_path / "b", 4)).fit()
    assert (first.step, first.epoch) == (4, 1)
    resumed = Trainer(config(tmp_path / "b", 7), resume=True)
    assert (resumed.step, resumed.epoch, resumed.batch_in_epoch) == (4, 1, 1)
    second = resumed.fit()
    assert straight.step == second.step == 7
    a, b = _weights(straight.last_checkpoint), _weights(second.last_checkpoint)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), [k for k in a if not torch.equal(a[k], b[k])][:5]
    sa, sb = load_checkpoint(straight.last_checkpoint), load_checkpoint(second.last_checkpoint)
    assert sa["scheduler"]["last_epoch"] == sb["scheduler"]["last_epoch"] == 7
    assert torch.equal(sa["rng"]["torch"], sb["rng"]["torch"])


def test_sigint_saves_and_returns_cleanly(tmp_path, tiny_train_config):
    trainer = Trainer(tiny_train_config(tmp_path, train={"epochs": 50}))
    real_step = trainer.train_step

    def step_then_interrupt(batch):
        out = real_step(batch)
        if trainer.step == 3:
            os.kill(os.getpid(), signal.SIGINT)
        return out

    trainer.train_step = step_then_interrupt
    # The handler in force before fit() (SIG_IGN when CI runs the suite as a background job).
    handler_before = signal.getsignal(signal.SIGINT)
    result = trainer.fit()
    assert result.status == "interrupted" and result.step == 3
    state = load_checkpoint(tmp_path / "last.pt")
    assert (state["step"], state["epoch"], state["batch_in_epoch"]) == (3, 0, 3)
    assert signal.getsignal(signal.SIGINT) is handler_before  # handlers restored


def test_sigterm_to_train_py_saves_a_checkpoint_and_exits_cleanly(tmp_path, tiny_train_config):
    cfg = tiny_train_config(tmp_path / "run", train={"epochs": 1000})
    config_file = tmp_path / "cfg.yaml"
    config_file.write_text(yaml.safe_dump(cfg))
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "training" / "train.py"), "--config", str(config_file)],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not (tmp_path / "run" / "last.pt").exists():  # written at the end of epoch 0
            assert proc.poll() is None, proc.stdout.read()
            assert time.monotonic() < deadline, "training did not start"
            time.sleep(0.2)
        os.kill(proc.pid, signal.SIGTERM)
        output, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, output
    assert "SIGTERM received" in output and "Traceback" not in output
    state = load_checkpoint(tmp_path / "run" / "last.pt")
    assert state["step"] >= 4


def test_init_starts_from_checkpoint_weights_and_rejects_other_shapes(tmp_path, tiny_train_config):
    source = Trainer(tiny_train_config(tmp_path / "src", train={"max_steps": 1}))
    source.fit()
    ckpt = tmp_path / "src" / "last.pt"
    tuned = Trainer(tiny_train_config(tmp_path / "ft", init=str(ckpt)))
    expected = _weights(ckpt)
    assert all(torch.equal(v, expected[k]) for k, v in tuned.model.state_dict().items())
    assert tuned.step == 0  # fine-tuning starts a fresh schedule
    with pytest.raises(CheckpointError, match="last.pt.*shape mismatches"):
        Trainer(tiny_train_config(tmp_path / "bad", init=str(ckpt), model={"num_classes": 4}))
