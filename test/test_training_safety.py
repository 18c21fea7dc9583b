"""Training runs that cannot do what was asked say so: leftovers of killed writers, finished runs
resumed, unwritable outputs, modules that get no gradient and a loss that is identically zero."""

from __future__ import annotations

import errno
import logging
import subprocess
import sys

import pytest
import torch
import yaml
from conftest import load_tool

from selfdc_core.model_io import stale_temp_files, temp_path
from selfdc_core.training.sanity import GradientSanityCheck
from selfdc_core.training.state import OutputError
from selfdc_core.training.trainer import Trainer


def _train_cli():
    return load_tool("train")


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_temp_files_of_killed_writers_are_removed_at_start_and_on_resume(tmp_path, tiny_train_config):
    out = tmp_path / "run"
    out.mkdir()
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        stale = temp_path(out / "last.pt", _dead_pid())
        kept = temp_path(out / "best.pt", live.pid)  # a writer that is still running
        for f in (stale, kept):
            f.write_bytes(b"\0" * 4096)
        assert stale_temp_files(out) == [stale]
        cfg = tiny_train_config(out, train={"max_steps": 1})
        Trainer(cfg).fit()
        assert not stale.exists() and kept.exists()

        stale = temp_path(out / "last.pt", _dead_pid())
        stale.write_bytes(b"\0" * 4096)
        Trainer(tiny_train_config(out, train={"max_steps": 2}), resume=True)
        assert not stale.exists() and kept.exists()
    finally:
        live.kill()
        live.wait()


def test_resuming_a_finished_run_trains_nothing_and_says_so(tmp_path, tiny_train_config, capsys):
    cfg = tiny_train_config(tmp_path / "run", train={"max_steps": 2})
    done = Trainer(cfg).fit()
    assert (done.status, done.step) == ("max_steps", 2)
    before = done.last_checkpoint.read_bytes()
    for _ in range(2):  # the same answer every time: no extra step per resume
        again = Trainer(cfg, resume=True).fit()
        assert (again.status, again.step) == ("already_done", 2)
    assert done.last_checkpoint.read_bytes() == before

    config_file = tmp_path / "cfg.yaml"
    config_file.write_text(yaml.safe_dump(cfg))
    capsys.readouterr()
    assert _train_cli().main(["--config", str(config_file), "--resume"]) == 0
    out = capsys.readouterr().out
    assert "nothing to train" in out and "train.max_steps" in out
    assert done.last_checkpoint.read_bytes() == before


def test_an_unwritable_output_folder_is_a_one_line_error_naming_it(tmp_path, tiny_train_config, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    cfg = tiny_train_config(blocker / "run")
    with pytest.raises(OutputError, match=f"cannot write {blocker}"):
        Trainer(cfg)
    config_file = tmp_path / "cfg.yaml"
    config_file.write_text(yaml.safe_dump(cfg))
    assert _train_cli().main(["--config", str(config_file)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: cannot write") and str(blocker) in err[0]


def test_a_full_disk_while_saving_names_the_checkpoint_and_leaves_no_temp_file(
    tmp_path, tiny_train_config, monkeypatch
):
    trainer = Trainer(tiny_train_config(tmp_path / "run", train={"max_steps": 1}))

    def disk_full(obj, f, *args, **kwargs):
        f.write(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", disk_full)
    with pytest.raises(OutputError, match=r"cannot write .*last\.pt: No space left on device"):
        trainer.fit()
    assert not list((tmp_path / "run").glob(".*.tmp"))


class _TwoBranches(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.used = torch.nn.Linear(3, 1)
        self.unused = torch.nn.Linear(3, 1)
        self.frozen = torch.nn.Linear(3, 1).requires_grad_(False)


def _step(model, loss_scale: float, check: GradientSanityCheck) -> list[str]:
    model.zero_grad()
    loss = loss_scale * model.used(torch.ones(2, 3)).sum()
    loss.backward()
    return check.observe(loss)


def test_sanity_check_names_modules_without_gradient_once_after_n_steps():
    model = _TwoBranches()
    check = GradientSanityCheck(model, steps=3)
    assert _step(model, 1.0, check) == [] and _step(model, 1.0, check) == []
    warnings = _step(model, 1.0, check)
    assert len(warnings) == 1 and "no gradient reached unused in the first 3 steps" in warnings[0]
    assert "frozen" not in warnings[0] and "used," not in warnings[0]
    assert _step(model, 1.0, check) == [] and not check.active  # reported once
    assert GradientSanityCheck(_TwoBranches(), steps=1, ignore=("unused",)).observe(torch.tensor(1.0)) == [
        "no gradient reached used in the first 1 steps: these modules stay at their initialisation "
        "(check which loss terms are on and what they are applied to)"
    ]


def test_sanity_check_reports_a_loss_that_is_identically_zero():
    model = _TwoBranches()
    check = GradientSanityCheck(model, steps=2)
    _step(model, 0.0, check)
    warnings = _step(model, 0.0, check)
    assert any("loss was exactly 0 in each of the first 2 steps" in w for w in warnings)
    assert any("used, unused" in w for w in warnings)  # a zero loss gives every module a zero gradient


def test_trainer_warns_by_default_when_nothing_trains(tmp_path, tiny_train_config, caplog):
    trainer = Trainer(tiny_train_config(tmp_path / "run", train={"max_steps": 3, "sanity_steps": 2}))
    real = trainer.objective.loss.forward
    trainer.objective.loss.forward = lambda o, b: (0.0 * real(o, b)[0], {})
    with caplog.at_level(logging.WARNING, logger="selfdc.train"):
        trainer.fit()
    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("loss was exactly 0 in each of the first 2 steps" in m for m in messages), messages
    silent = next(m for m in messages if m.startswith("no gradient reached"))
    for name in ("encoder", "decoder", "depth_head", "propagation"):
        assert name in silent
    assert ("seg_decoder" in silent) == trainer.objective.trains_seg_branch
