"""The README's robot install: a venv with --system-site-packages, colcon build with it active,
and the installed node started by the venv's Python (as `ros2 launch` does).

Here the packages that ROS and pip would provide on a robot come from the environment running the
tests: the venv sees them through a site directory, as it would see /opt/ros and its own pip
installs. What is checked is the layout: which Python the installed entry point runs, and that it
imports the installed node, not the source tree.
"""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
import venv
from pathlib import Path

from ros_helpers import require_isolated_network

ROOT = Path(__file__).resolve().parents[1]
PACKAGE_FILES = ["setup.py", "setup.cfg", "package.xml", "resource", "launch", "config", "selfdc_core",
                 "selfdc_ros"]
DOMAIN_ID = 58


def make_robot_venv(path: Path) -> Path:
    """`python3 -m venv --system-site-packages <path>`, seeing this environment's packages."""
    venv.EnvBuilder(system_site_packages=True, with_pip=False, symlinks=True).create(path)
    own_site = next(path.glob("lib/python3*/site-packages"))
    provided = [p for p in site.getsitepackages() if Path(p).is_dir()]
    (own_site / "provided.pth").write_text(
        "".join(f"import site; site.addsitedir({p!r})\n" for p in provided)
    )
    return path


def colcon_build(workspace: Path, env: dict) -> subprocess.CompletedProcess:
    colcon = Path(sys.executable).with_name("colcon")
    return subprocess.run(
        [str(colcon), "--log-base", str(workspace / "log"), "build", "--base-paths", str(workspace / "src"),
         "--build-base", str(workspace / "build"), "--install-base", str(workspace / "install")],
        capture_output=True, text=True, timeout=300, env=env, cwd=workspace,
    )


def test_colcon_build_in_an_active_venv_runs_the_node_with_the_venv_python(tmp_path):
    require_isolated_network()
    robot_venv = make_robot_venv(tmp_path / "venv")
    (robot_venv / "COLCON_IGNORE").touch()  # the README keeps the venv out of the build
    src = tmp_path / "src" / "selfdc"
    src.mkdir(parents=True)
    for name in PACKAGE_FILES:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(path, src / name)
    active = dict(os.environ, VIRTUAL_ENV=str(robot_venv),
                  PATH=f"{robot_venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}")
    active.pop("PYTHONHOME", None)
    built = colcon_build(tmp_path, active)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]

    prefix = tmp_path / "install" / "selfdc_ros"
    script = prefix / "lib" / "selfdc_ros" / "completion_node"
    assert script.read_text().splitlines()[0] == "#!/usr/bin/env python3"  # the active venv's Python
    installed_site = next((prefix / "lib").glob("python3*/site-packages"))
    sourced = dict(active, PYTHONPATH=str(installed_site), ROS_DOMAIN_ID=str(DOMAIN_ID))

    probe = subprocess.run(
        ["python3", "-c", "import sys, selfdc_ros.completion_node as n, torch, rclpy; "
                          "print(sys.prefix); print(n.__file__)"],
        capture_output=True, text=True, timeout=120, env=sourced, cwd=tmp_path,
    )
    assert probe.returncode == 0, probe.stderr[-3000:]
    prefix_used, node_file = probe.stdout.split()
    assert Path(prefix_used) == robot_venv
    assert Path(node_file).is_relative_to(installed_site)

    run = subprocess.run([str(script), "--ros-args", "-r", "__ns:=/venv_test"], capture_output=True,
                         text=True, timeout=120, env=sourced, cwd=tmp_path)
    assert run.returncode == 1  # the installed node started and stopped on the missing checkpoint
    assert "parameter 'checkpoint' is empty" in run.stderr + run.stdout
