"""The auxiliary-head losses: L_seg (eq. 6) and the image-reconstruction alternative (Table 6).

Region ids -> classes. Pseudo-label generators emit region ids ranked by area within the image
(1 = largest, 0 = unlabeled). With a C-class head, region r >= 1 becomes class min(r, C) - 1:
the C-1 largest regions get a class of their own and every smaller region shares the last
class; unlabeled pixels are ignored. Semantic generators (class ids) pass through unchanged
as long as their ids are < C.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

IGNORE_INDEX = -100


def segments_to_classes(segments: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(B,H,W) region ids -> (B,H,W) int64 class labels; 0 -> IGNORE_INDEX, r -> min(r, C) - 1."""
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
    if not isinstance(segments, torch.Tensor) or segments.is_floating_point() or segments.is_complex():
        got = getattr(segments, "dtype", type(segments).__name__)
        raise ValueError(f"segments must be an integer tensor of region ids, got {got}")
    segments = segments.long()
    classes = segments.clamp(max=num_classes) - 1
    return torch.where(segments > 0, classes, torch.full_like(classes, IGNORE_INDEX))


def segmentation_loss(seg_logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy averaged over the batch's labelled pixels (labels != IGNORE_INDEX); 0 if none."""
    if not isinstance(seg_logits, torch.Tensor) or seg_logits.ndim != 4 or not seg_logits.is_floating_point():
        got = getattr(seg_logits, "shape", type(seg_logits).__name__)
        raise ValueError(f"seg_logits must be a floating (B,C,H,W) tensor, got {got}")
    b, c, h, w = seg_logits.shape
    if not isinstance(labels, torch.Tensor) or labels.is_floating_point() or labels.dtype == torch.bool:
        raise ValueError(f"labels must be an integer (B,H,W) tensor, got {getattr(labels, 'dtype', labels)}")
    if tuple(labels.shape) != (b, h, w):
        raise ValueError(f"labels must have shape (B,H,W) = {(b, h, w)} to match seg_logits, "
                         f"got {tuple(labels.shape)}")
    labels = labels.long()
    labelled = labels != IGNORE_INDEX
    if bool(((labels < 0) & labelled).any() | (labels >= c).any()):
        raise ValueError(f"labels must be class ids in [0, {c}) or IGNORE_INDEX ({IGNORE_INDEX})")
    total = F.cross_entropy(seg_logits, labels, ignore_index=IGNORE_INDEX, reduction="sum")
    return total / labelled.sum().clamp(min=1).to(seg_logits.dtype)


def image_reconstruction_loss(seg_logits: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
    """Table 6's image-based auxiliary task: the head predicts the image; mean L1 between
    sigmoid(seg_logits[:, :3]) and the RGB image in [0,1]."""
    if not isinstance(seg_logits, torch.Tensor) or seg_logits.ndim != 4 or seg_logits.shape[1] < 3:
        got = getattr(seg_logits, "shape", type(seg_logits).__name__)
        raise ValueError(f"seg_logits must be (B,C>=3,H,W) to reconstruct RGB, got {got}")
    expected = (seg_logits.shape[0], 3, *seg_logits.shape[2:])
    if not isinstance(image, torch.Tensor) or tuple(image.shape) != expected:
        raise ValueError(f"image must be (B,3,H,W) matching seg_logits, got {getattr(image, 'shape', None)}")
    return (torch.sigmoid(seg_logits[:, :3]) - image.to(seg_logits.dtype)).abs().mean()
