"""make_masks: resumable, sharded, failure-counting dataset walk, and its CLI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from selfdc_core.segmentation import LabelCache, SegmentSource, make_masks, parse_shard, shard_indices

REPO = Path(__file__).resolve().parents[1]


class TinyDataset:
    """The two methods make_masks needs; `broken` indices raise like an unreadable file."""

    def __init__(self, n=7, broken=()):
        self.n, self.broken = n, set(broken)

    def __len__(self):
        return self.n

    def key(self, i):
        return f"scene_{i % 2}/{i:05d}"

    def raw_rgb(self, i):
        if i in self.broken:
            raise ValueError(f"scene_{i % 2}/{i:05d}.h5: truncated file")
        img = np.zeros((12, 16, 3), np.uint8)
        img[:, : 4 + i] = 255  # a bright band whose width depends on the index
        return img


def band_generator(rgb):
    return 1 + (rgb[..., 0] > 0).astype(np.int32)


def test_make_masks_writes_mirrored_tree_and_resumes(tmp_path):
    cache = LabelCache(tmp_path)
    summary = make_masks(TinyDataset(), band_generator, cache, progress=False)
    assert (summary.total, summary.done, summary.skipped, summary.failed) == (7, 7, 0, [])
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.png"))[:2] == [
        "scene_0/00000.png",
        "scene_0/00002.png",
    ]
    assert np.array_equal(
        SegmentSource(tmp_path).get("scene_1/00003", TinyDataset().raw_rgb(3)),
        band_generator(TinyDataset().raw_rgb(3)),
    )
    # A second run does nothing; overwrite redoes everything.
    again = make_masks(TinyDataset(), band_generator, cache, progress=False)
    assert (again.done, again.skipped) == (0, 7)
    redo = make_masks(TinyDataset(), "felzenszwalb", cache, overwrite=True, progress=False)
    assert (redo.done, redo.skipped) == (7, 0)


def test_make_masks_counts_failures_and_goes_on(tmp_path):
    summary = make_masks(TinyDataset(broken={2, 5}), band_generator, LabelCache(tmp_path), progress=False)
    assert summary.done == 5 and not summary.ok
    assert [key for key, _ in summary.failed] == ["scene_0/00002", "scene_1/00005"]
    assert "truncated" in summary.failed[0][1]
    # The failed keys are retried on the next run.
    retry = make_masks(TinyDataset(), band_generator, LabelCache(tmp_path), progress=False)
    assert (retry.done, retry.skipped) == (2, 5)


def test_shards_are_disjoint_and_cover_everything(tmp_path):
    for n in (1, 3, 4, 10):
        parts = [list(shard_indices(7, (i, n))) for i in range(n)]
        flat = [j for part in parts for j in part]
        assert sorted(flat) == list(range(7)) and len(flat) == len(set(flat))
    cache = LabelCache(tmp_path)
    done = [
        make_masks(TinyDataset(), band_generator, cache, shard=(i, 3), progress=False).done for i in range(3)
    ]
    assert done == [3, 2, 2] and len(list(tmp_path.rglob("*.png"))) == 7
    assert parse_shard("1/4") == (1, 4)
    for bad in ("4/4", "-1/2", "1", "a/b", "0/0"):
        with pytest.raises(ValueError, match="i/n"):
            parse_shard(bad)


def run_cli(*args, cwd=REPO):
    return subprocess.run(
        [sys.executable, str(REPO / "training" / "make_masks.py"), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def cli():
    """training/make_masks.py imported in-process (a subprocess costs a torch import each time)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_masks_cli", REPO / "training" / "make_masks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cli_help(cli, capsys):
    with pytest.raises(SystemExit) as done:
        cli.main(["--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    for flag in ("--config", "--split", "--generator", "--cache-root", "--shard", "--overwrite", "key=value"):
        assert flag in out
    with pytest.raises(SystemExit) as bad:
        cli.main(["--config", "x.yaml", "--shard", "3/2"])
    assert bad.value.code == 2 and "i/n" in capsys.readouterr().err


def test_cli_writes_labels_for_a_synthetic_config(tmp_path, cli, capsys):
    config = tmp_path / "synthetic.yaml"
    config.write_text(
        "data:\n"
        "  train: {name: synthetic, num_frames: 3, seed: 1}\n"
        "segmentation:\n"
        f"  cache_root: {tmp_path / 'labels'}\n"
        "  generator: felzenszwalb\n"
        "  generator_kwargs: {scale: 200.0}\n"
    )
    result = run_cli("--config", str(config), "--shard", "0/1", "--no-progress")
    assert result.returncode == 0, result.stderr
    assert "3 written, 0 already cached, 0 failed" in result.stdout
    pngs = sorted((tmp_path / "labels").rglob("*.png"))
    assert len(pngs) == 3
    from selfdc_core.data import SyntheticScenes

    dataset = SyntheticScenes(num_frames=3, seed=1)
    source = SegmentSource(tmp_path / "labels")
    labels = source.get(dataset.key(0), dataset.raw_rgb(0))
    assert labels.shape == dataset.raw_rgb(0).shape[:2] and labels.min() >= 1
    assert cli.main(["--config", str(config), "--generator", "slic", "--no-progress"]) == 0
    assert "0 written, 3 already cached" in capsys.readouterr().out


def test_cli_main_reports_failures_with_nonzero_exit(tmp_path, cli, monkeypatch, capsys):
    seen = {}

    def fake_build_split(cfg, split, with_segments):
        seen.update(split=split, with_segments=with_segments)
        return TinyDataset(broken={4})

    monkeypatch.setattr(cli, "build_split", fake_build_split)
    monkeypatch.setattr(
        cli,
        "load_config",
        lambda path, overrides: {
            "data": {},
            "train": {"mode": "self_supervised"},
            "bag": None,
            "segmentation": {
                "generator": "sam",
                "generator_kwargs": {"checkpoint": "absent.pth"},
                "cache_root": None,
            },
        },
    )
    code = cli.main(
        [
            "--config",
            "c.yaml",
            "--split",
            "val",
            "--generator",
            "slic",
            "--cache-root",
            str(tmp_path),
            "--shard",
            "0/2",
            "--no-progress",
        ]
    )
    out = capsys.readouterr().out
    assert code == 1 and seen == {"split": "val", "with_segments": False}
    assert "3 written, 0 already cached, 1 failed (of 4)" in out
    assert "FAILED scene_0/00004: ValueError" in out
    assert len(list(tmp_path.rglob("*.png"))) == 3
    assert cli.main(["--config", "c.yaml", "--generator", "slic", "--no-progress"]) == 2  # no cache root


def _fake_config(cli, monkeypatch, dataset, cache_root):
    monkeypatch.setattr(cli, "build_split", lambda *args, **kwargs: dataset)
    monkeypatch.setattr(cli, "load_config", lambda path, overrides: {
        "data": {}, "train": {"mode": "self_supervised"}, "bag": None,
        "segmentation": {"generator": "slic", "generator_kwargs": {}, "cache_root": str(cache_root)},
    })


def test_verify_rewrites_broken_cached_labels(tmp_path, cli, monkeypatch, capsys):
    import cv2

    cache = LabelCache(tmp_path)
    make_masks(TinyDataset(), band_generator, cache, progress=False)
    intact = {k: cache.path(k).read_bytes() for k in ("scene_1/00001", "scene_0/00004", "scene_1/00005")}
    truncated, flipped, eight_bit = cache.path("scene_0/00000"), cache.path("scene_0/00002"), "scene_1/00003"
    truncated.write_bytes(truncated.read_bytes()[:-30])  # a run killed mid-write, by another tool
    data = bytearray(flipped.read_bytes())
    data[len(data) // 2] ^= 0xFF  # a bit flip on disk: the PNG CRC no longer matches
    flipped.write_bytes(bytes(data))
    cv2.imwrite(str(cache.path(eight_bit)), np.zeros((12, 16), np.uint8))  # decodes, but not 16-bit
    # Without --verify, a rerun trusts the cache.
    _fake_config(cli, monkeypatch, TinyDataset(), tmp_path)
    assert cli.main(["--config", "c.yaml", "--no-progress"]) == 0
    assert "0 written, 7 already cached" in capsys.readouterr().out
    assert cli.main(["--config", "c.yaml", "--verify", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "verified 7 cached labels: 3 broken" in out
    assert "3 written, 4 already cached, 0 failed" in out
    for key in ("scene_0/00000", "scene_0/00002", "scene_1/00003"):
        assert f"BROKEN {key}" in out
    for i in range(7):
        labels = cache.load(TinyDataset().key(i))  # every label decodes again
        assert labels.shape == (12, 16) and labels.dtype == np.uint16
    assert all(cache.path(k).read_bytes() == b for k, b in intact.items())  # good ones untouched
