"""What the file-backed datasets (NYU, KITTI-DC) share: bad-file handling and pseudo-labels.

A subclass provides `__len__`, `key(i)`, `source(i)` (the file to name in errors), `raw_rgb(i)`
and `_load(i) -> sample dict`. This class turns a `DataError` into either an exception
(default) or, with `skip_bad=True`, a logged and counted skip to the next item, and it
attaches the file name to any other exception raised while loading.
"""

from __future__ import annotations

import logging

import numpy as np
from torch.utils.data import Dataset

from selfdc_core.data.io import DataError
from selfdc_core.segmentation.source import optional_segment_source

log = logging.getLogger(__name__)


class FileDataset(Dataset):
    def __init__(self, skip_bad: bool = False, segments_root=None, segment_fallback=None):
        self.skip_bad = bool(skip_bad)
        self.segments_root = segments_root
        self.segment_fallback = segment_fallback
        self.skipped = 0  # items skipped in this process (each DataLoader worker counts its own)
        self.skipped_files: list[str] = []
        self._segment_source = optional_segment_source(segments_root, segment_fallback)

    # ---- subclass interface ----
    def key(self, i: int) -> str:
        raise NotImplementedError

    def source(self, i: int) -> str:
        raise NotImplementedError

    def _load(self, i: int) -> dict:
        raise NotImplementedError

    # ---- shared behaviour ----
    def _index(self, i: int) -> int:
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"index {i} out of range for {type(self).__name__} with {n} items")
        return i % n

    def __getitem__(self, i: int) -> dict:
        i = self._index(i)
        for attempt in range(len(self)):
            j = (i + attempt) % len(self)
            try:
                return self._load(j)
            except DataError as exc:
                if not self.skip_bad:
                    raise
                self.skipped += 1
                self.skipped_files.append(self.source(j))
                log.warning("skipping bad item %d (%d skipped so far): %s", j, self.skipped, exc)
            except Exception as exc:
                if hasattr(exc, "add_note"):  # keep the type (e.g. MissingLabelError), add the file
                    exc.add_note(f"while loading {type(self).__name__} item {j}: {self.source(j)}")
                raise
        raise DataError(f"{type(self).__name__}: every one of the {len(self)} items failed to load")

    @property
    def uses_segments(self) -> bool:
        return self._segment_source is not None

    def _raw_segments(self, key: str, rgb: np.ndarray) -> np.ndarray | None:
        """Pseudo-labels at the stored image resolution, or None when none are configured."""
        return None if self._segment_source is None else self._segment_source.get(key, rgb)

    @staticmethod
    def _missing_report(missing: list[str], what: str, total: int) -> str:
        shown = "\n  ".join(missing[:5])
        more = f"\n  ... and {len(missing) - 5} more" if len(missing) > 5 else ""
        return f"{len(missing)} of {total} items lack {what}:\n  {shown}{more}"
