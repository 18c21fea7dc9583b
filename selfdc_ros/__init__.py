"""Thin rclpy layer over selfdc_core: message <-> numpy conversion, time sync and the node."""
