"""torchvision ResNet trunks, optionally with ImageNet weights read from the torch hub cache.

Weights are never downloaded at run time: when they are not in the cache, a RuntimeError says which
file to download and where to put it.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlparse

import torch
from torchvision.models import ResNet, ResNet18_Weights, ResNet34_Weights, resnet18, resnet34

_BACKBONES = {
    "resnet18": (resnet18, ResNet18_Weights.IMAGENET1K_V1),
    "resnet34": (resnet34, ResNet34_Weights.IMAGENET1K_V1),
}
BACKBONE_NAMES = tuple(_BACKBONES)


def imagenet_weights_path(backbone: str) -> Path:
    """Where torchvision's weights API looks for the ImageNet checkpoint of `backbone`."""
    _, weights = _BACKBONES[backbone]
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(weights.url).path)


def build_resnet(backbone: str, pretrained: bool) -> ResNet:
    """Build a torchvision ResNet; with `pretrained`, load IMAGENET1K_V1 from the hub cache only."""
    if backbone not in _BACKBONES:
        raise ValueError(f"backbone must be one of {BACKBONE_NAMES}, got {backbone!r}")
    builder, weights = _BACKBONES[backbone]
    if not pretrained:
        return builder(weights=None)
    path = imagenet_weights_path(backbone)
    hint = (
        f"download {weights.url} and place it at {path} (the torch hub cache, "
        "set by $TORCH_HOME), or build the model with pretrained=False"
    )
    if not path.is_file():
        raise RuntimeError(f"ImageNet weights for {backbone} are not available offline: {hint}")
    net = builder(weights=None)
    try:
        # The file is cached, so the weights API only reads it (no network access).
        net.load_state_dict(weights.get_state_dict(progress=False, weights_only=True))
    except Exception as err:  # corrupt or mismatched file: say which one and how to fix it
        raise RuntimeError(
            f"could not load ImageNet weights for {backbone} from {path} ({err}); {hint}"
        ) from err
    return net
