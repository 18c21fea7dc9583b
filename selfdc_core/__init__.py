"""SelfDC core: the ROS-free library (network, losses, metrics, data, pseudo-labels, training).

Nothing in this package imports rclpy or a ROS message package.
"""

__version__ = "0.1.0"
