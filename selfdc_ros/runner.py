"""The node's process: start-up, spin, and a clean end on Ctrl-C / SIGTERM.

Every start-up failure (bad ROS arguments or parameter files, bad parameters, a missing or
corrupt checkpoint, an unusable device, invalid QoS overrides) is one `[FATAL]` log line naming
the cause and exit code 1, never a traceback. Ctrl-C or SIGTERM, at any moment, ends with
exit code 0: the signals only set a flag that the spin loop checks, so no KeyboardInterrupt can
surface in the middle of ROS or torch code.
"""

from __future__ import annotations

import signal
import threading

import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.signals import SignalHandlerOptions

NODE_NAME = "completion_node"


def _fatal(message: str) -> int:
    rclpy.logging.get_logger(NODE_NAME).fatal(message)
    return 1


def _stop_on_signals() -> threading.Event:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    return stop


def _autostart(node, stop: threading.Event) -> bool:
    """Configure then activate; False when a transition failed (its cause is already logged)."""
    node.fatal_on_failure = True  # the process ends on failure, so the line is [FATAL]
    for trigger in (node.trigger_configure, node.trigger_activate):
        if stop.is_set():
            return True
        if trigger() != TransitionCallbackReturn.SUCCESS:
            if node.startup_error is None:
                _fatal("start-up failed (see the log above)")
            return False
    node.fatal_on_failure = False
    return True


def _spin(node, stop: threading.Event) -> int:
    executor = SingleThreadedExecutor(context=node.context)
    executor.add_node(node)
    try:
        if node.params["autostart"] is not False and not _autostart(node, stop):
            return 1
        while not stop.is_set() and node.context.ok():
            executor.spin_once(timeout_sec=0.1)
    finally:
        executor.shutdown()
    return 0


def run(node_class, args=None) -> int:
    """Run `node_class` (a lifecycle node) as a process; return its exit code."""
    stop = _stop_on_signals()
    try:
        rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    except Exception as exc:  # malformed --ros-args, unreadable parameter file, ...
        return _fatal(f"invalid ROS arguments: {exc}".replace("\n", " "))
    node = None
    try:
        node = node_class()
        return _spin(node, stop)
    except Exception as exc:  # anything unforeseen at start-up still ends in one line
        return _fatal(f"{type(exc).__name__}: {exc}".replace("\n", " "))
    finally:
        if node is not None:
            try:
                node.close()
            except Exception as exc:  # never a traceback on the way out
                rclpy.logging.get_logger(NODE_NAME).error(f"while shutting down: {exc}")
        rclpy.try_shutdown()
