"""What every dataset shares: indexing, implausible sparse depths dropped and counted, unit checks."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from test_nyu import TEST, block_depth, write_h5

from selfdc_core.data import NYUDepthV2, SyntheticScenes
from selfdc_core.data.factory import DATASETS, dataset_class
from selfdc_core.data.frame_dataset import FrameDataset, FrameSource, RawFrame, check_index, drop_out_of_range


def test_out_of_range_and_non_finite_depths_are_zeroed_and_counted():
    sparse = np.array([[0.0, 1.5, 1e9], [-2.0, np.nan, np.inf], [0.3, 79.0, 80.5]], np.float32)
    kept, dropped = drop_out_of_range(sparse, 0.5, 80.0)
    assert dropped == 6  # 1e9, -2, nan, inf, 0.3 (below min) and 80.5; zeros are "no measurement"
    np.testing.assert_array_equal(kept, [[0, 1.5, 0], [0, 0, 0], [0, 79.0, 0]])
    assert kept.dtype == np.float32
    same, none = drop_out_of_range(kept, 0.5, 80.0)
    assert none == 0 and same is kept  # nothing to drop: no copy


def test_dataset_drops_sparse_depths_outside_its_range_and_counts_them(caplog):
    spec = dict(num_frames=2, seed=3, height=48, width=64, sparse="random", num_samples=200)
    full, narrow = SyntheticScenes(**spec), SyntheticScenes(**spec, max_depth=3.0)
    a, b = full[0]["sparse"], narrow[0]["sparse"]
    far = (a > 3.0).sum().item()
    assert far > 0 and full.dropped_depths == 0
    assert narrow.dropped_depths == far and (b <= 3.0).all()
    assert (b[a <= 3.0] == a[a <= 3.0]).all()  # the plausible ones are untouched
    with pytest.raises(ValueError, match="min_depth < max_depth"):
        SyntheticScenes(**spec, min_depth=5.0, max_depth=2.0)


def test_nyu_depth_in_millimetres_is_reported(tmp_path, caplog):
    root = tmp_path / "nyu"
    write_h5(root / f"{TEST[0]}.h5", seed=0)
    write_h5(root / f"{TEST[1]}.h5", depth=block_depth(1) * 1000.0, seed=1)  # mm stored as float
    ds = NYUDepthV2(root, split="test", num_samples=100)
    with caplog.at_level(logging.WARNING):
        ds[0]
        assert ds.millimetre_files == 0
        ds[1]
    assert ds.millimetre_files == 1
    assert any("seems to store millimetres" in r.getMessage() and TEST[1] in r.getMessage()
               for r in caplog.records)


def test_one_index_rule_for_every_dataset():
    assert check_index(-1, 3, "X") == 2 and check_index(np.int64(1), 3, "X") == 1
    with pytest.raises(IndexError, match="index 3 out of range for X with 3 items"):
        check_index(3, 3, "X")
    with pytest.raises(TypeError, match="X index must be an integer"):
        check_index(1.0, 3, "X")
    with pytest.raises(TypeError):
        check_index(True, 3, "X")


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_every_dataset_is_a_frame_source_on_the_shared_pipeline(name):
    cls = dataset_class(name)
    assert issubclass(cls, FrameDataset)
    assert cls.read is not FrameDataset.read  # the source part is its own
    assert "_load" not in vars(cls) and "__getitem__" not in vars(cls)  # the rest is shared


def test_a_sample_is_the_raw_frame_through_the_shared_pipeline():
    ds = SyntheticScenes(num_frames=1, seed=2, height=32, width=48, sparse="random", num_samples=50,
                         with_gt=True, segments="oracle")
    assert isinstance(ds, FrameSource)
    raw = ds.read(0)
    assert isinstance(raw, RawFrame) and raw.rgb.dtype == np.uint8 and raw.segments is not None
    item = ds[0]
    np.testing.assert_array_equal(item["sparse"][0].numpy(), raw.sparse)
    np.testing.assert_array_equal(item["gt"][0].numpy(), raw.gt)
    np.testing.assert_array_equal(item["segments"].numpy(), raw.segments)
    np.testing.assert_allclose(item["rgb"].numpy().transpose(1, 2, 0) * 255.0, raw.rgb, atol=1e-4)
