"""DDP: two CPU processes (gloo, loopback) launched with torchrun train in lock-step on disjoint shards."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]

RANK_SCRIPT = """
import json, sys
import torch
from selfdc_core.training.trainer import Trainer

cfg = json.loads(open(sys.argv[1]).read())
trainer = Trainer(cfg)
sampler = trainer.train_loader.sampler
sampler.start(0)
indices = sampler.indices()
result = trainer.fit()
rank = trainer.ctx.rank
params = {k: v.detach().clone() for k, v in trainer.model.named_parameters()}
torch.save({"rank": rank, "world": trainer.ctx.world_size, "indices": indices, "step": result.step,
            "params": params}, sys.argv[2] + f"/rank{rank}.pt")
trainer.ctx.close()
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_gloo_ranks_hold_identical_weights_and_split_the_data(tmp_path, tiny_train_config):
    cfg = tiny_train_config(tmp_path / "run", train={"epochs": 1, "batch_size": 2})  # 8 frames: 2 steps/rank
    (tmp_path / "cfg.json").write_text(json.dumps(cfg))
    (tmp_path / "rank.py").write_text(RANK_SCRIPT)
    env = {**os.environ, "GLOO_SOCKET_IFNAME": "lo", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--nnodes=1",
           "--master_addr=127.0.0.1", f"--master_port={_free_port()}",
           str(tmp_path / "rank.py"), str(tmp_path / "cfg.json"), str(tmp_path)]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    assert r0["world"] == r1["world"] == 2 and r0["step"] == r1["step"] == 2
    # The sampler split the 8 frames into disjoint halves that cover the dataset.
    assert set(r0["indices"]).isdisjoint(r1["indices"])
    assert sorted(r0["indices"] + r1["indices"]) == list(range(8))
    # Gradients were all-reduced: both replicas took the same optimiser steps.
    assert r0["params"].keys() == r1["params"].keys()
    assert all(torch.equal(r0["params"][k], r1["params"][k]) for k in r0["params"])
    # ... and they moved away from the initialisation (training happened).
    from selfdc_core.model_io import load_checkpoint

    saved = load_checkpoint(tmp_path / "run" / "last.pt")
    assert saved["step"] == 2
    assert all(torch.equal(saved["model"][k], v) for k, v in r0["params"].items())
    # Only rank 0 writes: one TensorBoard event file.
    assert len(list((tmp_path / "run" / "tb").glob("events.out.tfevents.*"))) == 1
