"""Data loading that makes resumed runs (and repeated evaluations) exact.

Every item is produced under RNGs seeded from (seed, epoch, index), so an item's random
augmentation and sparse sampling do not depend on the worker that loads it, on the number of
workers, or on which batches came before; a run resumed mid-epoch skips the consumed batches
and sees exactly the items (and augmentations) an uninterrupted run would have.
Datasets therefore draw randomness from the global `random`, `numpy.random` or `torch` RNGs.
"""

from __future__ import annotations

import random

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler
from torch.utils.data.distributed import DistributedSampler


def _item_seed(seed: int, epoch: int, index: int) -> int:
    return int(np.random.SeedSequence([seed, epoch, index]).generate_state(1)[0])


class SeededItems(Dataset):
    """Wraps a dataset; `[(epoch, index)]` loads `dataset[index]` under a per-item seed."""

    def __init__(self, dataset: Dataset, seed: int):
        self.dataset = dataset
        self.seed = int(seed)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, epoch_and_index):
        epoch, index = epoch_and_index
        in_main_process = torch.utils.data.get_worker_info() is None
        if in_main_process:  # keep the training loop's own RNG streams untouched
            saved = (random.getstate(), np.random.get_state(), torch.get_rng_state())  # noqa: NPY002
        s = _item_seed(self.seed, epoch, index)
        random.seed(s)
        np.random.seed(s)  # noqa: NPY002 - datasets may draw from the global numpy RNG
        torch.manual_seed(s)
        try:
            return self.dataset[index]
        finally:
            if in_main_process:
                random.setstate(saved[0])
                np.random.set_state(saved[1])  # noqa: NPY002
                torch.set_rng_state(saved[2])


class EpochSampler(Sampler):
    """A DistributedSampler (this rank's shard, shuffled per epoch) yielding (epoch, index).

    `start(epoch, skip_batches)` selects the epoch and drops the batches a resumed run has
    already consumed.
    """

    def __init__(self, dataset, num_replicas: int, rank: int, shuffle: bool, seed: int, batch_size: int):
        self.inner = DistributedSampler(
            dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed, drop_last=False
        )
        self.batch_size = batch_size
        self.epoch = 0
        self.skip = 0

    def start(self, epoch: int, skip_batches: int = 0) -> None:
        self.epoch = epoch
        self.skip = skip_batches * self.batch_size
        self.inner.set_epoch(epoch)

    def indices(self) -> list[int]:
        """This rank's indices for the current epoch, before skipping."""
        return list(self.inner)

    def __iter__(self):
        for index in self.indices()[self.skip :]:
            yield (self.epoch, index)

    def __len__(self) -> int:
        return max(len(self.inner) - self.skip, 0)


def make_loader(
    dataset: Dataset,
    *,
    batch_size: int,
    workers: int,
    seed: int,
    train: bool,
    num_replicas: int = 1,
    rank: int = 0,
    pin_memory: bool = False,
) -> DataLoader:
    """A DataLoader over `SeededItems(dataset)` with an `EpochSampler` (`loader.sampler`)."""
    sampler = EpochSampler(dataset, num_replicas, rank, shuffle=train, seed=seed, batch_size=batch_size)
    return DataLoader(
        SeededItems(dataset, seed),
        batch_size=batch_size,
        sampler=sampler,
        num_workers=workers,
        pin_memory=pin_memory,
        drop_last=train,  # BatchNorm needs full batches; the shuffle varies what is dropped
        persistent_workers=workers > 0,
        # The loader's own base seed must not consume the global torch RNG (exact resume).
        generator=torch.Generator().manual_seed(seed),
    )
