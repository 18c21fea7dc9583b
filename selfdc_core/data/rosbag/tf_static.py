"""The static transform tree recorded on /tf_static, and lookups along its chains.

A TransformStamped with header.frame_id = parent and child_frame_id = child carries
T_parent_child (p_parent = T p_child). A lookup composes the chain from each frame up to
their common ancestor, as tf2 does for static frames.
"""

from __future__ import annotations

import numpy as np

from selfdc_core.geometry import make_transform

__all__ = ["StaticTfTree"]


def _strip(frame: str) -> str:
    return str(frame).lstrip("/")  # tf2 frame ids carry no leading slash; old drivers add one


class StaticTfTree:
    """child frame -> (parent frame, T_parent_child)."""

    def __init__(self):
        self.edges: dict[str, tuple[str, np.ndarray]] = {}

    def __len__(self) -> int:
        return len(self.edges)

    def add_message(self, tf_message) -> None:
        """Add every transform of a tf2_msgs/TFMessage (a later one for the same child wins, as in tf2)."""
        for ts in tf_message.transforms:
            t, q = ts.transform.translation, ts.transform.rotation
            T = make_transform([t.x, t.y, t.z], [q.x, q.y, q.z, q.w])
            self.edges[_strip(ts.child_frame_id)] = (_strip(ts.header.frame_id), T)

    def frames(self) -> list[str]:
        return sorted(set(self.edges) | {parent for parent, _ in self.edges.values()})

    def _to_root(self, frame: str) -> tuple[str, np.ndarray]:
        """(root frame, T_root_frame), composing the chain frame -> parent -> ... -> root."""
        seen, T, current = [frame], np.eye(4), frame
        while current in self.edges:
            parent, T_parent_current = self.edges[current]
            if parent in seen:
                raise ValueError(f"/tf_static has a cycle through frame {parent!r}: {' -> '.join(seen)}")
            T = T_parent_current @ T
            seen.append(parent)
            current = parent
        return current, T

    def lookup(self, target: str, source: str) -> np.ndarray:
        """T_target_source (p_target = T p_source), e.g. lookup(camera optical frame, lidar frame)."""
        target, source = _strip(target), _strip(source)
        if target == source:
            return np.eye(4)
        known = self.frames()
        for name in (target, source):
            if name not in known:
                raise ValueError(f"frame {name!r} is not in /tf_static (frames there: {known})")
        root_t, T_root_target = self._to_root(target)
        root_s, T_root_source = self._to_root(source)
        if root_t != root_s:
            raise ValueError(
                f"/tf_static does not connect {source!r} to {target!r}: their trees have roots "
                f"{root_s!r} and {root_t!r}"
            )
        return np.linalg.inv(T_root_target) @ T_root_source
