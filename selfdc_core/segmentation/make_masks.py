"""Walk a dataset and cache one pseudo-label map per image (the library behind training/make_masks.py)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from .cache import LabelCache
from .generators import resolve_generator

log = logging.getLogger(__name__)


@dataclass
class MakeMasksSummary:
    total: int = 0  # indices in this shard
    done: int = 0  # label maps written
    skipped: int = 0  # already cached (resume)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (key, error)

    @property
    def ok(self) -> bool:
        return not self.failed


def parse_shard(text: str) -> tuple[int, int]:
    """'i/n' -> (i, n) with 0 <= i < n."""
    try:
        i, n = (int(p) for p in text.split("/"))
    except ValueError:
        raise ValueError(f"shard must look like i/n (e.g. 0/4), got {text!r}") from None
    return check_shard((i, n))


def check_shard(shard: tuple[int, int]) -> tuple[int, int]:
    i, n = shard
    if n < 1 or not 0 <= i < n:
        raise ValueError(f"shard i/n needs n >= 1 and 0 <= i < n, got {i}/{n}")
    return i, n


def shard_indices(length: int, shard: tuple[int, int]) -> range:
    """Indices of shard i of n: interleaved (i, i+n, i+2n, ...), so that shards get equal shares
    of every scene even when the dataset is ordered scene by scene."""
    i, n = check_shard(shard)
    return range(i, length, n)


def make_masks(dataset, generator, cache: LabelCache, shard=(0, 1), overwrite=False, progress=True):
    """Write `cache.path(dataset.key(i))` for every index of `shard`; return a MakeMasksSummary.

    `dataset` offers `len()`, `key(i)` and `raw_rgb(i)`; `generator` is a name, a `{name, ...}`
    mapping or a callable. Cached keys are skipped unless `overwrite`, so an interrupted run
    resumes. A failure (unreadable image, generator error, write error) is logged with its key,
    counted and skipped; the run goes on.
    """
    from tqdm import tqdm

    generator = resolve_generator(generator)
    # A ConcatDataset (a config with a list of dataset specs) is walked part by part.
    parts = getattr(dataset, "datasets", [dataset])
    items = [(part, j) for part in parts for j in range(len(part))]
    indices = shard_indices(len(items), shard)
    summary = MakeMasksSummary(total=len(indices))
    bar = tqdm(indices, desc=f"make_masks {shard[0]}/{shard[1]}", unit="img", disable=not progress)
    for index in bar:
        key = f"<index {index}>"
        try:
            part, j = items[index]
            key = part.key(j)
            if not overwrite and cache.exists(key):
                summary.skipped += 1
                continue
            cache.save(key, generator(part.raw_rgb(j)))
            summary.done += 1
        except Exception as err:  # one bad file must not end a long run
            log.warning("make_masks: %s failed: %s: %s", key, type(err).__name__, err)
            summary.failed.append((key, f"{type(err).__name__}: {err}"))
            bar.set_postfix(failed=len(summary.failed))
    return summary
