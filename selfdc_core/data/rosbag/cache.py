"""The on-disk sample cache of one extracted bag.

    <cache_root>/<bag name>-<hash>/settings.json    what the cache is of: extraction settings, bag sizes
    <cache_root>/<bag name>-<hash>/<stamp_ns>.npz   rgb uint8, sparse float32 m, K, stamp [, gt]
    <cache_root>/<bag name>-<hash>/index.json       written last: every sample and the skip report

The hash of the record keeps caches of other settings (a training and a validation split
configured differently, a re-recorded bag) apart instead of overwriting each other.
Sample keys are `<bag name>/<stamp_ns>` (the image stamp), so pseudo-labels land in
`<segments_root>/<bag name>/<stamp_ns>.png`. Samples are written atomically, one file each:
an interrupted extraction keeps what it wrote, and the next run only decodes the rest.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

__all__ = ["SampleCache"]

FORMAT = 1


class SampleCache:
    def __init__(self, cache_root, bag_name: str, record: dict):
        self.bag_name = bag_name
        self.record = record
        digest = hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()[:12]
        self.dir = Path(cache_root) / f"{bag_name}-{digest}"
        self.index_path = self.dir / "index.json"
        self.settings_path = self.dir / "settings.json"

    @classmethod
    def at(cls, directory, bag_name: str) -> SampleCache:
        """A reader of an existing cache folder (as returned in the index's `dir`)."""
        cache = cls.__new__(cls)
        cache.bag_name, cache.record, cache.dir = bag_name, None, Path(directory)
        cache.index_path, cache.settings_path = cache.dir / "index.json", cache.dir / "settings.json"
        return cache

    def key(self, stamp_ns: int) -> str:
        return f"{self.bag_name}/{int(stamp_ns)}"

    def sample_path(self, stamp_ns: int) -> Path:
        return self.dir / f"{int(stamp_ns)}.npz"

    # ---- validity ----
    def prepare(self) -> None:
        """Start or resume the extraction: samples already in the folder are kept."""
        self.dir.mkdir(parents=True, exist_ok=True)
        if not self.settings_path.is_file():
            self._write_json(self.settings_path, self.record)

    def load_index(self) -> dict | None:
        """The finished index, when every sample it lists is on disk; else None."""
        try:
            index = json.loads(self.index_path.read_text())
        except (OSError, json.JSONDecodeError):
            return None
        if index.get("format") != FORMAT or not all(
            self.sample_path(s["stamp"]).is_file() for s in index["samples"]
        ):
            return None
        return index

    def write_index(self, samples: list[dict], report: dict) -> dict:
        index = {"format": FORMAT, "bag": self.bag_name, "samples": samples, "report": report}
        self._write_json(self.index_path, index)
        return index

    # ---- samples ----
    def has(self, stamp_ns: int) -> bool:
        return self.sample_path(stamp_ns).is_file()

    def write(self, stamp_ns: int, rgb, sparse, K, gt=None) -> None:
        arrays = {"rgb": rgb, "sparse": sparse.astype(np.float32), "K": np.asarray(K, np.float64),
                  "stamp": np.int64(stamp_ns)}
        if gt is not None:
            arrays["gt"] = gt.astype(np.float32)
        path = self.sample_path(stamp_ns)
        tmp = path.with_name(path.stem + ".tmp.npz")
        np.savez_compressed(tmp, **arrays)
        os.replace(tmp, path)

    def read(self, stamp_ns: int) -> dict[str, np.ndarray]:
        path = self.sample_path(stamp_ns)
        try:
            with np.load(path) as data:
                return {k: data[k] for k in data.files}
        except FileNotFoundError:
            raise FileNotFoundError(
                f"cached sample {path} is missing; delete {self.index_path} to extract the bag again"
            ) from None
        except Exception as exc:
            raise ValueError(f"cached sample {path} is unreadable ({exc}); delete it, extract again") from exc

    @staticmethod
    def _write_json(path: Path, data: dict) -> None:
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(data, indent=1))
        os.replace(tmp, path)
