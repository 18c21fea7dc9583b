"""Imports flow one way: data -> models/losses -> model I/O -> training -> evaluation/inference -> ROS.

Every `import` in the packages is read with `ast`, including the lazy ones inside functions, so
a module that reaches up a layer fails here even if the import only runs on some code path.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Lower number = lower layer. A module may import its own layer and the ones below it.
LAYERS = {
    "selfdc_core": 0,  # the package's own __init__
    "selfdc_core.geometry": 0,
    "selfdc_core.metrics": 0,
    "selfdc_core.visualize": 0,
    "selfdc_core.figures": 0,
    "selfdc_core.sync": 0,
    "selfdc_core.msg_decode": 0,
    "selfdc_core.sensor_geometry": 0,
    "selfdc_core.message_set": 0,
    "selfdc_core.inference_limits": 0,
    "selfdc_core.baselines": 0,
    "selfdc_core.devices": 0,
    "selfdc_core.data": 1,
    "selfdc_core.segmentation": 1,
    "selfdc_core.models": 2,
    "selfdc_core.losses": 2,
    "selfdc_core.model_io": 3,
    "selfdc_core.training": 4,
    "selfdc_core.evaluation": 5,
    "selfdc_core.inference": 5,
    "selfdc_core.deploy": 5,  # deployment formats: beside inference, which loads them
    "selfdc_core.adaptation": 5,  # the online learner: training code driven beside inference
    "selfdc_core.testing": 6,  # shared test/benchmark helpers may use the whole core
    "selfdc_ros": 7,
}
ROS_MODULES = ("rclpy", "sensor_msgs", "std_msgs", "geometry_msgs", "diagnostic_msgs", "builtin_interfaces",
               "tf2_ros", "message_filters", "rosidl_runtime_py", "launch", "launch_ros")
TEST_ONLY_MODULES = ("conftest", "ros_helpers", "loss_reference")


def layer_of(module: str) -> int | None:
    """The layer of the longest registered prefix of `module`; None for modules outside the packages."""
    parts = module.split(".")
    for n in range(len(parts), 0, -1):
        name = ".".join(parts[:n])
        if name in LAYERS:
            return LAYERS[name]
    return None


def module_name(path: Path, root: Path = ROOT) -> str:
    rel = path.relative_to(root).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def imported_modules(path: Path, root: Path = ROOT) -> list[tuple[int, str]]:
    """(line, absolute module name) for every import in `path`, relative ones resolved."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module_name(path, root).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found.append((node.lineno, module))
            # `from selfdc_core import training` imports the sub-package itself.
            found += [(node.lineno, f"{module}.{alias.name}") for alias in node.names]
    return found


def package_files() -> list[Path]:
    return sorted([*(ROOT / "selfdc_core").rglob("*.py"), *(ROOT / "selfdc_ros").rglob("*.py")])


def upward_imports(path: Path, root: Path = ROOT) -> list[str]:
    own = layer_of(module_name(path, root))
    assert own is not None, f"{path} is in no layer; add its package to LAYERS"
    bad, lines = [], set()
    for line, module in imported_modules(path, root):
        target = layer_of(module)
        if target is not None and target > own and line not in lines:
            lines.add(line)
            bad.append(f"{path.relative_to(root)}:{line} imports {module} (layer {target} > {own})")
    return bad


def test_every_package_module_imports_only_its_layer_or_below():
    bad = [msg for path in package_files() for msg in upward_imports(path)]
    assert not bad, "upward imports:\n" + "\n".join(bad)


def test_the_checker_catches_an_upward_import(tmp_path):
    """The rule itself: lazy and relative upward imports are reported with their line."""
    module = tmp_path / "selfdc_core" / "data" / "leaky.py"
    module.parent.mkdir(parents=True)
    module.write_text("from .io import DataError\n\n\ndef f():\n"
                      "    from selfdc_core.training.trainer import Trainer\n    from ..inference import x\n")
    assert upward_imports(module, tmp_path) == [
        "selfdc_core/data/leaky.py:5 imports selfdc_core.training.trainer (layer 4 > 1)",
        "selfdc_core/data/leaky.py:6 imports selfdc_core.inference (layer 5 > 1)",
    ]


def test_the_core_never_imports_ros():
    bad = [
        f"{path.relative_to(ROOT)}:{line} imports {module}"
        for path in sorted((ROOT / "selfdc_core").rglob("*.py"))
        for line, module in imported_modules(path)
        if module.split(".")[0] in ROS_MODULES
    ]
    assert not bad, "selfdc_core must run without ROS:\n" + "\n".join(bad)


@pytest.mark.parametrize("folder", ["bench", "training"])
def test_scripts_import_only_the_package(folder):
    """Benchmarks and tools use installed helpers, never test modules through sys.path."""
    bad = []
    for path in sorted((ROOT / folder).glob("*.py")):
        text = path.read_text()
        if '/ "test"' in text or "'test'" in text:
            bad.append(f"{path.name} puts test/ on sys.path")
        bad += [f"{path.name}:{line} imports {module}" for line, module in imported_modules(path)
                if module.split(".")[0] in TEST_ONLY_MODULES]
    assert not bad, "\n".join(bad)
