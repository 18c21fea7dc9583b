"""Launch file, parameters file, RViz config and the colcon build of the package.

`launch`/`launch_ros` come with a ROS distribution, not with the package index, so the launch
file is checked by parsing it and by running its helpers (they need only yaml and os);
everything it passes must be declared by the node, whose declarations come from one table
(selfdc_ros.params.PARAMETERS). Parameter files go through the real rcl parser.
"""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml
from ros_helpers import require_isolated_network

from selfdc_ros.params import PARAMETER_NAMES, PARAMETERS

ROOT = Path(__file__).resolve().parents[1]
LAUNCH = ROOT / "launch" / "completion.launch.py"
PARAMS_YAML = ROOT / "config" / "completion.yaml"
RVIZ = ROOT / "config" / "selfdc.rviz"
DOMAIN_ID = 59


def flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def yaml_parameters() -> dict:
    return flatten(yaml.safe_load(PARAMS_YAML.read_text())["/**"]["ros__parameters"])


def launch_tree() -> ast.Module:
    return ast.parse(LAUNCH.read_text(), filename=str(LAUNCH))


def launch_constant(name: str):
    (assign,) = [n for n in launch_tree().body if isinstance(n, ast.Assign) and n.targets[0].id == name]
    return ast.literal_eval(assign.value)


def launch_helpers(*names: str) -> dict:
    """The launch file's module constants and the named helper functions, executed on their own."""
    tree = launch_tree()
    keep = [n for n in tree.body if isinstance(n, ast.Assign)]
    keep += [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name in names]
    namespace = {"yaml": yaml, "os": os}
    exec(compile(ast.Module(body=keep, type_ignores=[]), str(LAUNCH), "exec"), namespace)
    return namespace


def node_topics() -> set[str]:
    source = (ROOT / "selfdc_ros" / "completion_node.py").read_text()
    return set(re.findall(r'"((?:camera|lidar|tof|completion)/[a-z_/]+)"', source))


def test_params_yaml_lists_exactly_the_declared_parameters_with_matching_types():
    values = yaml_parameters()
    assert set(values) == PARAMETER_NAMES
    for p in PARAMETERS:
        v = values[p.name]
        assert type(v) is type(p.default), f"{p.name}: YAML {v!r} is not a {type(p.default).__name__}"
        if isinstance(p.default, list):
            assert len(v) == len(p.default) and all(isinstance(x, float) for x in v), p.name
        if p.choices:
            assert v in p.choices, p.name
        assert p.description, p.name


def test_launch_file_declares_the_standard_arguments():
    tree = launch_tree()
    assert any(isinstance(n, ast.FunctionDef) and n.name == "generate_launch_description" for n in tree.body)
    declared = {
        n.args[0].value
        for n in ast.walk(tree)
        if isinstance(n, ast.Call)
        and getattr(n.func, "id", "") == "DeclareLaunchArgument"
        and isinstance(n.args[0], ast.Constant)
    }
    assert {
        "params_file",
        "namespace",
        "use_rviz",
        "use_sim_time",
        "log_level",
        "autostart",
        "rviz_fixed_frame",
    } <= declared
    parameter_arguments = {arg for arg, _, _ in launch_constant("PARAMETER_ARGUMENTS")}
    assert {"checkpoint", "device", "sparse_source"} <= parameter_arguments
    source = LAUNCH.read_text()
    assert 'executable="completion_node"' in source and 'package="selfdc_ros"' in source
    assert "LifecycleNode(" in source and '"selfdc.rviz"' in source
    imports = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imports |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    # Nothing beyond a stock ROS 2 install and this package.
    assert imports <= {"launch", "launch_ros", "yaml", "os", "ament_index_python", "selfdc_ros"}


def test_launch_remaps_only_topics_the_node_uses():
    remaps = launch_constant("TOPIC_ARGUMENTS")
    topics = node_topics()
    assert {"camera/image", "camera/camera_info", "lidar/points", "tof/depth", "completion/depth"} <= topics
    assert {topic for _, topic, _ in remaps} == topics
    assert set(launch_constant("RVIZ_TOPICS")) <= topics


def test_launch_arguments_become_typed_node_parameters():
    helpers = launch_helpers("_yaml_value", "_node_parameter_overrides")
    params = helpers["_node_parameter_overrides"](
        {
            "checkpoint": "~/models/selfdc.pt",
            "device": "cpu",
            "max_depth": "10",
            "sparse_source": "",
            "extrinsic_source": "tf",
            "use_sim_time": "true",
            "autostart": "false",
        }
    )
    assert params == {
        "checkpoint": str(Path("~/models/selfdc.pt").expanduser()),
        "device": "cpu",
        "max_depth": 10,  # an int for a double: the node accepts it
        "extrinsic.source": "tf",
        "use_sim_time": True,
        "autostart": False,
    }
    assert set(params) <= PARAMETER_NAMES | {"use_sim_time"}
    defaults = helpers["_node_parameter_overrides"]({})  # nothing given: only the file applies
    assert defaults == {"use_sim_time": False, "autostart": True}


def test_launch_rejects_node_parameters_it_would_ignore_and_a_missing_rviz2():
    helpers = launch_helpers("_yaml_value", "_unsupported_parameter_arguments", "_check_arguments")
    check = helpers["_check_arguments"]
    check({"device": "cpu", "namespace": "/robot", "use_rviz": "false"}, PARAMETER_NAMES, lambda: False)
    for given, named in (({"warmup": "false"}, "warmup"), ({"sync_slop": "0.1"}, "sync_slop")):
        with pytest.raises(RuntimeError, match=named) as info:
            check(given, PARAMETER_NAMES, lambda: True)
        assert "params_file" in str(info.value)
    with pytest.raises(RuntimeError, match="rviz2 package is not installed"):
        check({"use_rviz": "true"}, PARAMETER_NAMES, lambda: False)
    check({"use_rviz": "true"}, PARAMETER_NAMES, lambda: True)
    # The check runs before any action exists, so nothing is started (no orphaned node).
    (launch,) = [n for n in launch_tree().body if isinstance(n, ast.FunctionDef) and n.name == "_launch"]
    calls = [n for n in ast.walk(launch) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)]
    first_check = min(c.lineno for c in calls if c.func.id == "_check_arguments")
    assert all(c.lineno > first_check for c in calls if c.func.id in ("Node", "LifecycleNode"))


def test_rviz_config_shows_colourised_depth_and_points():
    config = yaml.safe_load(RVIZ.read_text())
    manager = config["Visualization Manager"]
    displays = {d["Class"]: d for d in manager["Displays"]}
    # Relative topics: they follow the namespace (and the output remaps) RViz is started with.
    assert displays["rviz_default_plugins/Image"]["Topic"]["Value"] == "completion/depth_colorized"
    cloud = displays["rviz_default_plugins/PointCloud2"]
    assert cloud["Topic"]["Value"] == "completion/points" and cloud["Color Transformer"] == "RGB8"
    assert manager["Global Options"]["Fixed Frame"] == "camera_optical"  # rviz_fixed_frame replaces it


def declared_with_params_file(params_file: Path, namespace: str = "/") -> dict:
    """Parameter values of a CompletionNode started with `--params-file` (read by the real rcl)."""
    require_isolated_network()
    import rclpy
    from rclpy.context import Context

    from selfdc_ros.completion_node import CompletionNode
    from selfdc_ros.params import declared_values

    context = Context()
    rclpy.init(context=context, domain_id=DOMAIN_ID, args=["--ros-args", "--params-file", str(params_file)])
    try:
        node = CompletionNode(context=context, namespace=namespace)  # declares; loads nothing yet
        try:
            values = declared_values(node)
            described = node.describe_parameters(sorted(PARAMETER_NAMES))
            assert all(d.description for d in described)
            assert {d.name for d in described if not d.read_only} == {p.name for p in PARAMETERS if p.live}
            return values
        finally:
            node.destroy_node()
    finally:
        context.try_shutdown()


def test_node_accepts_the_shipped_params_file_through_rcl():
    values = declared_with_params_file(PARAMS_YAML, "/robot")
    assert values == yaml_parameters()


@pytest.mark.parametrize(
    "key, namespace",
    [
        ("/**", "/"),
        ("/**", "/robot"),
        ("/robot/completion_node", "/robot"),
        ("/**/completion_node", "/robot/front"),
        ("/completion_node", "/"),
    ],
)
def test_params_file_keys_apply_under_any_namespace_with_ints_for_doubles(tmp_path, key, namespace):
    path = tmp_path / "params.yaml"
    path.write_text(
        f"{key}:\n  ros__parameters:\n    max_depth: 10\n    device: cpu\n"
        "    extrinsic:\n      translation: [0, 0, 1]\n      source: quaternion\n"
    )
    values = declared_with_params_file(path, namespace)
    assert values["max_depth"] == 10.0 and isinstance(values["max_depth"], float)
    assert values["extrinsic.translation"] == [0.0, 0.0, 1.0]
    assert all(isinstance(v, float) for v in values["extrinsic.translation"])
    assert values["device"] == "cpu" and values["extrinsic.source"] == "quaternion"


def test_params_file_for_another_node_does_not_apply(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("/other/completion_node:\n  ros__parameters:\n    max_depth: 10.0\n")
    assert declared_with_params_file(path, "/robot")["max_depth"] == 0.0


def test_package_xml_declares_runtime_dependencies():
    root = ET.parse(ROOT / "package.xml").getroot()
    assert root.get("format") == "3" and root.findtext("name") == "selfdc_ros"
    depends = {e.text for e in root.iter("exec_depend")}
    assert {
        "rclpy",
        "sensor_msgs",
        "std_msgs",
        "geometry_msgs",
        "diagnostic_msgs",
        "lifecycle_msgs",
    } <= depends
    # The Python tf2 module lives in tf2_ros_py; rviz2 is optional (the launch file checks for it).
    assert "tf2_ros_py" in depends and "tf2_ros" not in depends
    assert "rviz2" not in {e.text for e in root.iter() if e.tag.endswith("depend")}
    assert root.find("export").findtext("build_type") == "ament_python"


PACKAGE_FILES = [
    "setup.py",
    "setup.cfg",
    "package.xml",
    "resource",
    "launch",
    "config",
    "selfdc_core",
    "selfdc_ros",
]


def test_colcon_build_installs_launch_config_and_console_script(tmp_path):
    require_isolated_network()
    colcon = Path(sys.executable).with_name("colcon")
    assert colcon.exists(), "colcon is installed with the dev extra: pip install -e '.[node,ros,dev]'"
    src = tmp_path / "src" / "selfdc_ros"
    src.mkdir(parents=True)
    for name in PACKAGE_FILES:  # only the package, never .venv or build outputs
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(path, src / name)
    env = dict(os.environ, PATH=f"{colcon.parent}{os.pathsep}{os.environ.get('PATH', '')}")
    result = subprocess.run(
        [
            str(colcon),
            "--log-base",
            str(tmp_path / "log"),
            "build",
            "--base-paths",
            str(tmp_path / "src"),
            "--build-base",
            str(tmp_path / "build"),
            "--install-base",
            str(tmp_path / "install"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    prefix = tmp_path / "install" / "selfdc_ros"
    share = prefix / "share" / "selfdc_ros"
    for rel in ["launch/completion.launch.py", "config/completion.yaml", "config/selfdc.rviz", "package.xml"]:
        assert (share / rel).is_file(), rel
    assert (prefix / "share" / "ament_index" / "resource_index" / "packages" / "selfdc_ros").is_file()
    script = prefix / "lib" / "selfdc_ros" / "completion_node"
    assert script.is_file() and os.access(script, os.X_OK)
    site = next((prefix / "lib").glob("python3*/site-packages"))
    assert (site / "selfdc_ros" / "completion_node.py").is_file()
    assert (site / "selfdc_core" / "sync.py").is_file()
    entry_points = next(site.glob("selfdc_ros*.egg-info/entry_points.txt")).read_text()
    assert "completion_node = selfdc_ros.completion_node:main" in entry_points

    # The installed script runs the installed code: without a checkpoint it is a clear fatal error.
    run = subprocess.run(
        [str(script), "--ros-args", "-r", "__ns:=/colcon_test"],
        capture_output=True,
        text=True,
        timeout=120,
        # The script starts `python3` from PATH, as in an activated environment (see README).
        env=dict(os.environ, PYTHONPATH=str(site), ROS_DOMAIN_ID=str(DOMAIN_ID),
                 PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"),
    )
    assert run.returncode == 1
    assert "[FATAL]" in run.stderr and "parameter 'checkpoint' is empty" in run.stderr
    assert "Traceback" not in run.stderr + run.stdout
