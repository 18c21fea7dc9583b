"""Launch file, parameters file, RViz config and the colcon build of the package.

`launch`/`launch_ros` come only with a full ROS distribution, so the launch file is checked by parsing it
and by running its parameter helper; everything it passes must be declared by the node,
whose declarations come from one table (selfdc_ros.params.PARAMETERS).
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

import yaml
from ros_helpers import require_isolated_network, tiny_checkpoint

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
    return flatten(yaml.safe_load(PARAMS_YAML.read_text())["completion_node"]["ros__parameters"])


def launch_tree() -> ast.Module:
    return ast.parse(LAUNCH.read_text(), filename=str(LAUNCH))


def node_topics() -> set[str]:
    source = (ROOT / "selfdc_ros" / "completion_node.py").read_text()
    return set(re.findall(r'create_(?:subscription|publisher)\(\s*\w+,\s*"([a-z_/]+)"', source))


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
    assert {"checkpoint", "params_file", "namespace", "use_rviz"} <= declared
    source = LAUNCH.read_text()
    assert 'executable="completion_node"' in source and 'package="selfdc_ros"' in source
    assert 'IfCondition(LaunchConfiguration("use_rviz"))' in source and '"selfdc.rviz"' in source
    imports = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imports |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert imports <= {"launch", "launch_ros", "yaml"}  # nothing beyond a stock ROS 2 install


def test_launch_remaps_only_topics_the_node_uses():
    tree = launch_tree()
    (assign,) = [n for n in tree.body if isinstance(n, ast.Assign) and n.targets[0].id == "TOPIC_ARGUMENTS"]
    remaps = ast.literal_eval(assign.value)
    topics = node_topics()
    assert {"camera/image", "camera/camera_info", "lidar/points", "tof/depth", "completion/depth"} <= topics
    assert {topic for _, topic, _ in remaps} <= topics
    assert {topic for _, topic, _ in remaps} >= topics - {"completion/diagnostics"}


def test_launch_passes_only_declared_parameters():
    # Run the launch file's own helper (it needs only yaml) on the shipped parameters file.
    tree = launch_tree()
    (func,) = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "_node_parameters"]
    namespace = {"yaml": yaml}
    exec(compile(ast.Module(body=[func], type_ignores=[]), str(LAUNCH), "exec"), namespace)
    params = namespace["_node_parameters"](str(PARAMS_YAML), "/models/selfdc.pt")
    assert set(flatten(params)) <= PARAMETER_NAMES
    assert flatten(params)["checkpoint"] == "/models/selfdc.pt"
    assert set(flatten(namespace["_node_parameters"](str(PARAMS_YAML), ""))) == PARAMETER_NAMES


def test_rviz_config_shows_colourised_depth_and_points():
    config = yaml.safe_load(RVIZ.read_text())
    manager = config["Visualization Manager"]
    displays = {d["Class"]: d for d in manager["Displays"]}
    assert displays["rviz_default_plugins/Image"]["Topic"]["Value"].endswith("completion/depth_colorized")
    cloud = displays["rviz_default_plugins/PointCloud2"]
    assert cloud["Topic"]["Value"].endswith("completion/points") and cloud["Color Transformer"] == "RGB8"
    assert manager["Global Options"]["Fixed Frame"] == "camera_optical"


def test_node_accepts_the_params_file_through_rcl(tmp_path):
    """The real rcl YAML parser reads completion.yaml and the node declares every value."""
    require_isolated_network()
    import rclpy
    from rclpy.context import Context
    from rclpy.parameter import Parameter

    from selfdc_ros.completion_node import CompletionNode

    context = Context()
    rclpy.init(context=context, domain_id=DOMAIN_ID, args=["--ros-args", "--params-file", str(PARAMS_YAML)])
    try:
        ckpt = tiny_checkpoint(tmp_path / "tiny.pt")
        node = CompletionNode(
            context=context,
            parameter_overrides=[Parameter("checkpoint", value=str(ckpt)), Parameter("warmup", value=False)],
        )
        try:
            expected = yaml_parameters()
            for name, value in expected.items():
                if name in ("checkpoint", "warmup"):
                    continue
                assert node.get_parameter(name).value == value, name
            described = node.describe_parameters(sorted(PARAMETER_NAMES))
            assert all(d.description for d in described)
        finally:
            node.destroy_node()
    finally:
        context.try_shutdown()


def test_package_xml_declares_runtime_dependencies():
    root = ET.parse(ROOT / "package.xml").getroot()
    assert root.get("format") == "3" and root.findtext("name") == "selfdc_ros"
    depends = {e.text for e in root.iter("exec_depend")}
    assert {"rclpy", "sensor_msgs", "std_msgs", "geometry_msgs", "diagnostic_msgs"} <= depends
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
    assert "parameter 'checkpoint' is empty" in run.stderr + run.stdout
