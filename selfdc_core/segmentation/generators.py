"""`build_generator(name, **cfg)`: one entry point for every pseudo-label generator."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

Generator = Callable[[np.ndarray], np.ndarray]

# name -> (module, class); modules are imported on demand so that the weight-free path never
# pays for importing segment_anything or transformers.
_REGISTRY = {
    "sam": (".sam", "SamGenerator"),
    "oneformer": (".oneformer", "OneFormerGenerator"),
    "felzenszwalb": (".classical", "FelzenszwalbGenerator"),
    "slic": (".classical", "SlicGenerator"),
}
# "fallback" is the config's name for the weight-free default.
_ALIASES = {"fallback": "felzenszwalb"}
GENERATOR_NAMES = tuple(sorted((*_REGISTRY, *_ALIASES)))


def build_generator(name: str, **cfg) -> Generator:
    """Return a callable `rgb_uint8 (H,W,3) -> int32 (H,W)` pseudo-label map (0 = unlabeled).

    sam          checkpoint, model_type (vit_b|vit_l|vit_h) or model (a built Sam), device,
                 points_per_side, ... (SamAutomaticMaskGenerator kwargs)
    oneformer    model_dir, task (semantic|panoptic), device, threshold, ...
    felzenszwalb scale, sigma, min_area_fraction     (alias: fallback)
    slic         n_segments, compactness, sigma
    """
    from importlib import import_module

    key = _ALIASES.get(name, name)
    if key not in _REGISTRY:
        raise ValueError(f"unknown segmentation generator {name!r}; valid names: {list(GENERATOR_NAMES)}")
    module, cls = _REGISTRY[key]
    return getattr(import_module(module, __package__), cls)(**cfg)


def resolve_generator(spec) -> Generator:
    """A generator from a name, a `{name: ..., **cfg}` mapping, or a callable (returned as is)."""
    if callable(spec):
        return spec
    if isinstance(spec, str):
        return build_generator(spec)
    if isinstance(spec, Mapping) and isinstance(spec.get("name"), str):
        cfg = dict(spec)
        return build_generator(cfg.pop("name"), **cfg)
    raise ValueError(
        f"a segmentation generator must be a name {list(GENERATOR_NAMES)}, a mapping with 'name', "
        f"or a callable, got {spec!r}"
    )
