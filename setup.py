"""ament_python package `selfdc_ros`; also a plain pip package (`pip install -e .[node]`).

One setup.py installs both Python packages: the ROS-free core (`selfdc_core`) and the
thin rclpy layer (`selfdc_ros`). The data_files put the launch and config files where
`ros2 launch selfdc_ros ...` looks for them after a colcon build.
"""
from glob import glob

from setuptools import find_packages, setup

package_name = "selfdc_ros"

setup(
    name=package_name,
    version="0.1.0",
    packages=find_packages(include=["selfdc_core", "selfdc_core.*", "selfdc_ros", "selfdc_ros.*"]),
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + package_name]),
        ("share/" + package_name, ["package.xml"]),
        ("share/" + package_name + "/launch", glob("launch/*.launch.py")),
        ("share/" + package_name + "/config", glob("config/*.yaml") + glob("config/*.rviz")),
        ("share/" + package_name + "/config/ablations", glob("config/ablations/*.yaml")),
    ],
    python_requires=">=3.10",
    # The core (geometry, message decoding, synchronisation) needs only these; each use adds an extra.
    install_requires=[
        "setuptools",
        "numpy>=1.21",
        "opencv-python-headless>=4.5",
        "PyYAML>=5.4",
    ],
    extras_require={
        # The node: inference with PyTorch. rclpy and the messages come from the ROS distribution.
        "node": [
            "torch>=2.3",
            "torchvision>=0.18",
        ],
        # Training, evaluation and data tools: datasets, pseudo-label generators, TensorBoard.
        "train": [
            "torch>=2.3",
            "torchvision>=0.18",
            "h5py>=3.8",
            "rosbags>=0.11,<0.12",
            "scikit-image>=0.22",
            "scipy>=1.10",
            "segment-anything>=1.0",
            "tensorboard>=2.14",
            "tqdm>=4.60",
            "transformers>=4.40",
        ],
        # Real ROS 2 Python wheels from the package index, for machines with no ROS distribution.
        "ros": [
            "ros-rclpy",
            "ros-sensor-msgs",
            "ros-std-msgs",
            "ros-geometry-msgs",
            "ros-diagnostic-msgs",
            "ros-rmw-fastrtps-cpp",
        ],
        "dev": [
            "pytest>=7.4",
            "ruff>=0.5",
            "colcon-core>=0.15",
            "colcon-ros>=0.4",
            "ros-ament-package",
        ],
    },
    zip_safe=True,
    maintainer="SelfDC developers",
    maintainer_email="selfdc@example.com",
    description="Self-supervised depth completion (SelfDC) with a real-time ROS 2 node.",
    license="MIT",
    entry_points={
        "console_scripts": [
            "completion_node = selfdc_ros.completion_node:main",
        ],
    },
)
