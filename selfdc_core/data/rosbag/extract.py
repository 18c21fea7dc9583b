"""Extraction: a rosbag2 -> the indexed sample cache (see cache.py), once, resumable, with a progress bar.

Messages are fed to the node's synchroniser (`selfdc_core.sync`) in the order they were
recorded, so a bag pairs exactly as the live node would have paired it; each set is decoded
and projected by `frames.assemble_frame`. Nothing is dropped silently: messages that never
made a set and sets that could not be used are counted per reason and reported at the end,
and an extraction with no sample at all is an `ExtractionError` that says why. A recording
whose stamps jump (a bag of several runs, a simulation reset) is paired across the jump, as
the live node would pair it.
"""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

import numpy as np
from tqdm import tqdm

from selfdc_core.sync import ApproximateTimeSynchronizer

from .cache import SampleCache
from .frames import (
    CAMERA_INFO,
    COMPRESSED_IMAGE,
    IMAGE,
    POINTCLOUD2,
    BadMessage,
    assemble_frame,
    set_options,
    stamp_to_ns,
)
from .reader import BagError, describe_topics, open_bag, read_messages, resolve_bag_path, storage_files
from .settings import ExtractionSettings
from .tf_static import StaticTfTree

__all__ = ["ExtractionError", "extract_bag"]

log = logging.getLogger(__name__)

TF_STATIC = "/tf_static"
TF_MESSAGE = "tf2_msgs/msg/TFMessage"
END_OF_BAG_NS = 3600 * 10**9
ROLE_TYPES = {
    "image": (IMAGE, COMPRESSED_IMAGE),
    "camera_info": (CAMERA_INFO,),
    "sparse": (POINTCLOUD2, IMAGE),
    "gt": (IMAGE,),
}


class ExtractionError(ValueError):
    """Extraction produced no usable sample; the message says why."""


def _bag_record(path: Path, settings: ExtractionSettings) -> dict:
    return {
        "settings": settings.fingerprint(),
        "files": {p.name: p.stat().st_size for p in storage_files(path)},
        "metadata_size": (path / "metadata.yaml").stat().st_size,
    }


def _connections(reader, settings: ExtractionSettings) -> dict[str, list]:
    """role -> connections of its topic; missing topics and unexpected types are BagErrors."""
    topics = {"image": settings.image_topic, "camera_info": settings.camera_info_topic,
              "sparse": settings.sparse_topic}
    if settings.gt_topic is not None:
        topics["gt"] = settings.gt_topic
    path = reader.paths[0]
    by_role: dict[str, list] = {}
    missing = []
    for role, topic in topics.items():
        conns = [c for c in reader.connections if c.topic == topic]
        if not conns:
            if role != "gt":  # ground truth is optional: real recordings have none
                missing.append(f"{role} topic {topic!r}")
            continue
        for c in conns:
            if c.msgtype not in ROLE_TYPES[role]:
                raise BagError(
                    f"{path}: topic {topic} ({role}) has message type {c.msgtype}, which is not supported; "
                    f"expected one of {list(ROLE_TYPES[role])}"
                )
        if len({c.msgtype for c in conns}) > 1:
            types = sorted({c.msgtype for c in conns})
            raise BagError(f"{path}: topic {topic} was recorded with several types {types}")
        by_role[role] = conns
    if missing:
        raise BagError(
            f"{path} lacks the configured {', '.join(missing)}. Topics in the bag:\n"
            f"  {describe_topics(reader)}\n"
            "Set image_topic / camera_info_topic / sparse_topic in the dataset config to the recorded names."
        )
    return by_role


def _static_tf(reader) -> StaticTfTree:
    tree = StaticTfTree()
    conns = [c for c in reader.connections if c.topic == TF_STATIC and c.msgtype == TF_MESSAGE]
    for _, _, msg in read_messages(reader, conns) if conns else ():
        tree.add_message(msg)
    return tree


class _Extrinsics:
    """T_cam_sensor per (camera frame, sensor frame): the configured matrix, else /tf_static."""

    def __init__(self, path: Path, configured: np.ndarray | None, tree: StaticTfTree):
        self.path, self.configured, self.tree = path, configured, tree
        self._cache: dict[tuple[str, str], np.ndarray] = {}

    def check_available(self) -> None:
        if self.configured is None and len(self.tree) == 0:
            raise BagError(
                f"{self.path}: no LiDAR -> camera extrinsic: the bag has no /tf_static and the dataset "
                "config sets none. Record /tf_static with the robot's static transforms, or set "
                "extrinsic: {translation: [x,y,z], rotation: [x,y,z,w]} (or matrix: 4x4) = T_cam_lidar "
                "(p_cam = T p_lidar)"
            )

    def __call__(self, camera_frame: str, sensor_frame: str) -> np.ndarray:
        if self.configured is not None:
            return self.configured
        key = (camera_frame, sensor_frame)
        if key not in self._cache:
            try:
                self._cache[key] = self.tree.lookup(camera_frame, sensor_frame)
            except ValueError as exc:
                raise BagError(
                    f"{self.path}: cannot find the transform from the LiDAR frame {sensor_frame!r} to the "
                    f"camera frame {camera_frame!r} in /tf_static: {exc}. Set extrinsic in the dataset "
                    "config instead."
                ) from None
        return self._cache[key]


def _why_empty(path, counts: Counter, stamps: dict, report: dict, settings: ExtractionSettings) -> str:
    lines = [f"no sample could be extracted from {path}:"]
    for role, n in counts.items():
        lo_hi = stamps.get(role)
        span = f", stamps {lo_hi[0] / 1e9:.3f} .. {lo_hi[1] / 1e9:.3f} s" if lo_hi else ""
        lines.append(f"  {role}: {n} messages{span}")
    if report["sync_dropped"]:
        lines.append(f"  messages that never synchronised within sync_slop={settings.sync_slop} s: "
                     f"{report['sync_dropped']}")
    if report["skipped_sets"]:
        lines.append(f"  synchronised sets skipped as unusable: {report['skipped_sets']}")
    if report["bad_messages"]:
        lines.append(f"  messages rejected before synchronisation: {report['bad_messages']}")
    lines.append("Check that the topics carry data at overlapping times, and raise sync_slop if the "
                 "camera and LiDAR stamps differ by more than it.")
    return "\n".join(lines)


class _Extraction:
    """One pass over an opened bag: synchronise, decode, project and write every set."""

    def __init__(self, reader, path: Path, cache: SampleCache, settings: ExtractionSettings):
        self.reader, self.path, self.cache, self.settings = reader, path, cache, settings
        by_role = _connections(reader, settings)
        self.roles = list(by_role)
        self.has_gt = "gt" in by_role
        self.sparse_type = by_role["sparse"][0].msgtype
        self.image_type = by_role["image"][0].msgtype
        self.extrinsics = _Extrinsics(path, settings.T_cam_sensor, StaticTfTree())
        if self.sparse_type == POINTCLOUD2:
            if settings.T_cam_sensor is None:
                self.extrinsics.tree = _static_tf(reader)
            self.extrinsics.check_available()
        self.role_of = {c.id: self.roles.index(role) for role, conns in by_role.items() for c in conns}
        self.connections = [c for conns in by_role.values() for c in conns]
        self.options = set_options(
            self.image_type, self.sparse_type, settings.use_projection_matrix, settings.filter_kwargs
        )
        self.sync = ApproximateTimeSynchronizer(len(self.roles), settings.sync_queue_size, settings.sync_slop)
        self.counts: Counter = Counter()  # messages read per role
        self.stamps: dict[str, list[int]] = {}  # role -> [first, last] stamp
        self.bad: Counter = Counter()  # messages rejected before synchronisation
        self.skipped: Counter = Counter()  # synchronised sets that could not be used, by kind
        self.samples: list[dict] = []
        self.resumed = 0
        self.out_of_range = 0  # sparse depths dropped outside the valid range
        self._warned: set[str] = set()

    def _warn_once(self, kind: str, text: str) -> None:
        if kind not in self._warned:
            self._warned.add(kind)
            log.warning("%s: %s", self.path.name, text)

    def run(self, progress: bool) -> None:
        bar = tqdm(total=sum(c.msgcount for c in self.connections), desc=f"extracting {self.path.name}",
                   unit="msg", disable=not progress, dynamic_ncols=True)
        try:
            for connection, _, msg in read_messages(self.reader, self.connections):
                bar.update(1)
                self._add(self.role_of[connection.id], msg)
                bar.set_postfix(samples=len(self.samples), refresh=False)
        finally:
            bar.close()
        # End of the recording: a message far in the future on every input lets the policy settle
        # the last set (live, it would wait for the next frame); the set of these is ignored.
        end = max((hi for _, hi in self.stamps.values()), default=0) + END_OF_BAG_NS
        for i in range(len(self.roles)):
            for item in self.sync.add(i, end, None):
                self._handle(item)

    def _add(self, index: int, msg) -> None:
        role = self.roles[index]
        self.counts[role] += 1
        try:
            stamp = stamp_to_ns(msg.header)
        except BadMessage as exc:
            self.bad[f"{role}:{exc.kind}"] += 1
            return
        lo_hi = self.stamps.setdefault(role, [stamp, stamp])
        lo_hi[0], lo_hi[1] = min(lo_hi[0], stamp), max(lo_hi[1], stamp)
        for item in self.sync.add(index, stamp, msg):
            self._handle(item)
        for kind, text in self.sync.pop_notices():
            self._warn_once(kind, f"{text} (input {index} = {role})")

    def _handle(self, item) -> None:
        parts = {role: msg for role, (_, msg) in zip(self.roles, item, strict=True)}
        image_stamp = item[self.roles.index("image")][0]
        if parts["image"] is None:  # the end-of-bag set
            return
        entry = {"key": self.cache.key(image_stamp), "stamp": image_stamp, "gt": self.has_gt}
        if self.cache.has(image_stamp):  # written by an interrupted earlier run
            self.resumed += 1
            self.samples.append(entry)
            return
        image, sparse = parts["image"], parts["sparse"]
        try:
            T = (self.extrinsics(image.header.frame_id, sparse.header.frame_id)
                 if self.sparse_type == POINTCLOUD2 else None)
            frame = assemble_frame(image, parts["camera_info"], sparse, self.options, T, parts.get("gt"))
        except BadMessage as exc:
            self.skipped[exc.kind] += 1
            return
        self.out_of_range += frame.out_of_range
        if frame.ignored_distortion:
            self._warn_once("ignored_distortion", frame.ignored_distortion)
        self.cache.write(image_stamp, frame.rgb, frame.sparse, frame.K, frame.gt)
        self.samples.append(entry)

    def report(self) -> dict:
        dropped = {reason: {self.roles[i]: n for i, n in enumerate(per) if n}
                   for reason, per in self.sync.stats.dropped.items() if any(per)}
        return {
            "messages": dict(self.counts),
            "samples": len(self.samples),
            "resumed": self.resumed,
            "sync_dropped": dropped,
            "skipped_sets": dict(self.skipped),
            "bad_messages": dict(self.bad),
            "sparse_out_of_range": self.out_of_range,
            "time_jumps": self.sync.stats.time_jumps,
            "gt": self.has_gt,
        }


def extract_bag(bag, cache_root, settings: ExtractionSettings | None = None, progress: bool = True) -> dict:
    """Extract `bag` into `<cache_root>/<bag name>-<hash>/` unless that is complete; return the index.

    index = {"samples": [{"key", "stamp", "gt"}...] (sorted by stamp), "report": {...},
    "dir": the cache folder}.
    """
    settings = settings or ExtractionSettings()
    path = resolve_bag_path(bag)
    cache = SampleCache(cache_root, path.name, _bag_record(path, settings))
    index = cache.load_index()
    if index is None:
        cache.prepare()
        with open_bag(path, settings.typestore) as reader:
            run = _Extraction(reader, path, cache, settings)
            run.run(progress)
        report = run.report()
        if not run.samples:
            raise ExtractionError(_why_empty(path, run.counts, run.stamps, report, settings))
        index = cache.write_index(sorted(run.samples, key=lambda s: s["stamp"]), report)
        problems = report["sync_dropped"] or report["skipped_sets"] or report["bad_messages"]
        (log.warning if problems else log.info)(_summary(path, report))
    index["dir"] = str(cache.dir)
    return index


def _summary(path: Path, report: dict) -> str:
    text = f"{path.name}: {report['samples']} samples ({report['resumed']} already cached)"
    sparse_dropped = sum(per.get("sparse", 0) for per in report["sync_dropped"].values())
    if report["sync_dropped"]:
        text += (f"; {sparse_dropped} sparse (LiDAR/ToF) messages had no matching image within the slop; "
                 f"unsynchronised messages by reason: {report['sync_dropped']}")
    if report["skipped_sets"]:
        text += f"; skipped sets: {report['skipped_sets']}"
    if report["bad_messages"]:
        text += f"; rejected messages: {report['bad_messages']}"
    return text
