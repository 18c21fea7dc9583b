"""Opening rosbag2 recordings (sqlite3 or mcap) with the `rosbags` package, with errors that name files.

Bags recorded by Jazzy and later embed their message definitions; Humble's sqlite3 bags do
not, so a distribution's type store is the fallback (`typestore`: humble, jazzy or kilted;
sensor_msgs, geometry_msgs and tf2_msgs are the same in all three).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from rosbags.highlevel import AnyReader
from rosbags.typesys import Stores, get_typestore

__all__ = [
    "BagError",
    "TYPESTORES",
    "describe_topics",
    "normalize_topic",
    "open_bag",
    "resolve_bag_path",
    "storage_files",
]

TYPESTORES = {"humble": Stores.ROS2_HUMBLE, "jazzy": Stores.ROS2_JAZZY, "kilted": Stores.ROS2_KILTED}
STORAGE_SUFFIXES = (".db3", ".mcap")


class BagError(ValueError):
    """A rosbag2 that cannot be used as configured (missing, corrupt, wrong topics or types)."""


def resolve_bag_path(bag) -> Path:
    """The rosbag2 directory (the one holding metadata.yaml); a storage file inside it is accepted too."""
    if bag is None or str(bag) == "":
        raise BagError("no rosbag2 given: pass bag=<recording directory> (of ros2 bag record -o <dir>)")
    path = Path(bag)
    if not path.exists():
        raise FileNotFoundError(f"rosbag2 not found: {path}")
    if path.is_file() and path.suffix in STORAGE_SUFFIXES and (path.parent / "metadata.yaml").is_file():
        path = path.parent
    if not (path.is_dir() and (path / "metadata.yaml").is_file()):
        raise BagError(
            f"{path} is not a rosbag2 directory: expected a folder with metadata.yaml and *.db3 or *.mcap "
            "files, as written by `ros2 bag record -o <dir>`"
        )
    return path


def storage_files(path: Path) -> list[Path]:
    return sorted(p for p in path.iterdir() if p.suffix in STORAGE_SUFFIXES)


def normalize_topic(topic: str) -> str:
    """Bags store absolute names; node topics are relative (`camera/image` -> `/camera/image`)."""
    topic = str(topic).strip()
    if not topic:
        raise ValueError("topic names must not be empty")
    return topic if topic.startswith("/") else "/" + topic


def describe_topics(reader: AnyReader) -> str:
    topics = sorted({(c.topic, c.msgtype, c.msgcount) for c in reader.connections})
    if not topics:
        return "(the bag has no topics)"
    return "\n  ".join(f"{t} [{m}, {n} messages]" for t, m, n in topics)


def _corrupt(path: Path, exc: BaseException) -> BagError:
    files = ", ".join(str(p) for p in storage_files(path)) or "no *.db3/*.mcap file"
    return BagError(
        f"cannot read rosbag2 {path} (storage files: {files}): {type(exc).__name__}: {exc}. The recording "
        "may be truncated or corrupt (e.g. `ros2 bag record` was killed); try `ros2 bag reindex` on it"
    )


@contextmanager
def open_bag(bag, typestore: str = "humble") -> Iterator[AnyReader]:
    """An opened AnyReader over the rosbag2 at `bag`; every read error becomes a BagError naming it."""
    if typestore not in TYPESTORES:
        raise ValueError(f"typestore must be one of {sorted(TYPESTORES)}, got {typestore!r}")
    path = resolve_bag_path(bag)
    reader = AnyReader([path], default_typestore=get_typestore(TYPESTORES[typestore]))
    try:
        reader.open()
    except (FileNotFoundError, PermissionError):
        raise
    except Exception as exc:  # rosbags, sqlite3, mcap, zstd and struct errors: all mean an unreadable bag
        raise _corrupt(path, exc) from exc
    try:
        yield reader
    finally:
        reader.close()


def read_messages(reader: AnyReader, connections) -> Iterator[tuple[object, int, object]]:
    """(connection, log time ns, deserialised message) in log-time order; corrupt data -> BagError."""
    path = Path(reader.paths[0])
    iterator = reader.messages(connections=connections)
    while True:
        try:
            connection, log_time, raw = next(iterator)
            msg = reader.deserialize(raw, connection.msgtype)
        except StopIteration:
            return
        except Exception as exc:  # a read or decode failure in the middle of the file
            raise _corrupt(path, exc) from exc
        yield connection, log_time, msg
