"""A non-rigid extrinsic (scale, shear, mirror) is refused wherever one is configured."""

import numpy as np
import pytest

from selfdc_core.data.rosbag.settings import extrinsic_matrix
from selfdc_core.geometry import make_transform
from selfdc_ros.extrinsics import StaticExtrinsic


def test_scaled_extrinsic_matrix_is_refused_by_the_node_and_the_bag_reader():
    T = make_transform([0.1, 0.0, -0.2], [0.0, 0.0, 0.0, 1.0])
    scaled = T.copy()
    scaled[:3, :3] *= 5.0
    with pytest.raises(ValueError, match=r"extrinsic.matrix is not rigid.*\[5\.0, 5\.0, 5\.0\]"):
        StaticExtrinsic(scaled)
    with pytest.raises(ValueError, match="not rigid"):
        extrinsic_matrix({"matrix": scaled.tolist()})
    np.testing.assert_array_equal(StaticExtrinsic(T).T, T)
    np.testing.assert_array_equal(extrinsic_matrix({"matrix": T.tolist()}), T)
