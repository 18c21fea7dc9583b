"""Online self-supervised adaptation: the model keeps learning from the frames it completes.

`OnlineAdapter` (adapter.py) is shared by the ROS node, `training/adapt_bag.py` (the same learner
over a recorded bag) and `bench/bench_adaptation.py`. Settings and their defaults: config.py.
"""

from .adapter import OnlineAdapter
from .config import DEFAULTS, adaptation_config, loss_of_checkpoint
from .gate import PriorityGate, attach_yield_points
from .holdout import choose_hidden, held_out_error
from .swap import DoubleBufferedModel

__all__ = [
    "DEFAULTS",
    "DoubleBufferedModel",
    "OnlineAdapter",
    "PriorityGate",
    "adaptation_config",
    "loss_of_checkpoint",
    "attach_yield_points",
    "choose_hidden",
    "held_out_error",
]
