"""completion_node as a process: every failed start-up is one [FATAL] line and exit code 1 (no
traceback); valid unusual values start; Ctrl-C and SIGTERM end with exit code 0.

Each configuration runs `python -m selfdc_ros.completion_node --ros-args ...` (real rclpy, in the
private network namespace); they run a few at a time to keep the suite short.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from ros_helpers import require_isolated_network, tiny_checkpoint

from selfdc_ros.extrinsics import tf2_available

pytestmark = pytest.mark.ros

DOMAIN_ID = 63
NOT_RIGID = f"extrinsic.matrix:={[1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0] + [1.0] * 4}"


def P(*assignments: str) -> list[str]:  # each assignment after a -p flag
    return [arg for a in assignments for arg in ("-p", a)]


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


# (id, extra --ros-args, text the [FATAL] line must contain); {ckpt} is a valid checkpoint,
# {corrupt}/{empty}/{dir}/{missing}/{bad_yaml} are made by the fixture.
FAILURES = [
    ("no_checkpoint", [], "parameter 'checkpoint' is empty"),
    ("missing_checkpoint", P("checkpoint:={missing}"), "checkpoint file not found"),
    ("checkpoint_is_a_directory", P("checkpoint:={dir}"), "checkpoint file not found"),
    ("corrupt_checkpoint", P("checkpoint:={corrupt}"), "cannot load checkpoint"),
    ("empty_checkpoint", P("checkpoint:={empty}"), "cannot load checkpoint"),
    ("unknown_device", P("device:=tpu9"), "parameter 'device'"),
    ("cuda_without_cuda", P("device:=cuda"), "CUDA is not available"),
    ("tf_without_tf2", P("extrinsic.source:=tf"), "tf2_ros is not importable"),
    ("slop_nan", P("sync.slop:=.nan"), "'sync.slop' is nan; expected a finite number"),
    ("slop_negative", P("sync.slop:=-0.1"), "'sync.slop' is -0.1; expected >= 0.0"),
    ("slop_string", P("sync.slop:=fast"), "'sync.slop' is 'fast' (str); expected a number"),
    ("queue_size_zero", P("sync.queue_size:=0"), "'sync.queue_size' is 0; expected >= 1"),
    ("queue_size_double", P("sync.queue_size:=2.5"), "expected an integer"),
    (
        "qos_depth_negative",
        P("qos_overrides./camera/image.subscription.depth:=-1"),
        "subscribe to /camera/image",
    ),
    ("qos_reliability_unknown", P("qos_overrides./lidar/points.subscription.reliability:=fast"), "fast"),
    ("cloud_stride_zero", P("cloud_stride:=0"), "'cloud_stride' is 0; expected >= 1"),
    ("cloud_stride_string", P("cloud_stride:=many"), "'cloud_stride' is 'many' (str); expected an integer"),
    ("input_height_only", P("input_height:=240"), "input_height and input_width must both be > 0"),
    ("input_width_negative", P("input_width:=-5"), "'input_width' is -5; expected >= 0"),
    ("kernel_even", P("filter.kernel_size:=4"), "'filter.kernel_size' must be odd"),
    ("image_transport_unknown", P("image_transport:=jpeg"), "expected one of ['raw', 'compressed']"),
    ("sparse_source_unknown", P("sparse_source:=radar"), "expected one of ['pointcloud', 'depth_image']"),
    ("extrinsic_source_unknown", P("extrinsic.source:=lidar"), "'extrinsic.source' is 'lidar'"),
    ("translation_two_values", P("extrinsic.translation:=[0.0,1.0]"), "needs 3 values"),
    ("rotation_three_values", P("extrinsic.rotation:=[0,0,1]"), "needs 4 values"),
    ("translation_strings", P("extrinsic.translation:=[a,b,c]"), "expected a list of numbers"),
    ("matrix_short", P("extrinsic.source:=matrix", "extrinsic.matrix:=[1.0,2.0]"), "16 values"),
    ("matrix_not_a_transform", P("extrinsic.source:=matrix", NOT_RIGID), "last row 0 0 0 1"),
    ("max_depth_negative", P("max_depth:=-1.0"), "'max_depth' is -1.0; expected >= 0.0"),
    ("max_depth_inf", P("max_depth:=.inf"), "expected a finite number"),
    ("warmup_string", P("warmup:=maybe"), "'warmup' is 'maybe' (str); expected a boolean"),
    ("autostart_int", P("autostart:=3"), "'autostart' is 3 (int); expected a boolean"),
    (
        "colorize_range_inverted",
        P("colorize.min_depth:=5.0", "colorize.max_depth:=2.0"),
        "above 'colorize.min_depth'",
    ),
    ("rate_tolerance_above_one", P("diagnostics.rate_tolerance:=2.0"), "expected <= 1.0"),
    ("params_file_missing", ["--params-file", "{missing}.yaml"], "invalid ROS arguments"),
    ("params_file_malformed", ["--params-file", "{bad_yaml}"], "invalid ROS arguments"),
    ("malformed_ros_argument", P("checkpoint"), "invalid ROS arguments"),
    ("mixed_types_in_a_list", P("extrinsic.matrix:=[1.0, 0]"), "invalid ROS arguments"),  # rcl: one type
]


def _node_command(args: list[str]) -> list[str]:
    return [sys.executable, "-m", "selfdc_ros.completion_node", "--ros-args", *args]


def _env(offset: int) -> dict:
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    path = os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))
    return dict(os.environ, ROS_DOMAIN_ID=str(DOMAIN_ID + offset), PYTHONPATH=path)


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("startup")
    (root / "corrupt.pt").write_bytes(b"this is not a torch file")
    (root / "empty.pt").write_bytes(b"")
    (root / "a_directory.pt").mkdir()
    (root / "bad.yaml").write_text("/**:\n  ros__parameters: [unclosed\n")
    return {
        "ckpt": str(tiny_checkpoint(root / "tiny.pt")),
        "corrupt": str(root / "corrupt.pt"),
        "empty": str(root / "empty.pt"),
        "dir": str(root / "a_directory.pt"),
        "missing": str(root / "nope" / "model.pt"),
        "bad_yaml": str(root / "bad.yaml"),
    }


@pytest.fixture(scope="module")
def failed_runs(files) -> dict:
    """Every configuration of FAILURES run to its end (valid checkpoint unless the case sets one)."""
    require_isolated_network()

    def run(case):
        name, args, _ = case
        args = [a.format(**files) for a in args]
        given = {a.split(":=")[0] for a in args if ":=" in a}
        # (rcl keeps the first -p of a name, so defaults only go where the case sets nothing)
        if name != "no_checkpoint" and "checkpoint" not in given:
            args = P(f"checkpoint:={files['ckpt']}") + args
        if "warmup" not in given:
            args = P("warmup:=false") + args
        try:
            result = subprocess.run(
                _node_command(args), capture_output=True, text=True, timeout=240, env=_env(1)
            )
        except subprocess.TimeoutExpired as exc:  # it started instead of failing: report what it said
            out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else exc.stdout or ""
            err = exc.stderr.decode() if isinstance(exc.stderr, bytes) else exc.stderr or ""
            result = subprocess.CompletedProcess(exc.cmd, None, out, err + "\n(still running after 240 s)")
        return name, result

    with ThreadPoolExecutor(max_workers=4) as pool:
        return dict(pool.map(run, FAILURES))


@pytest.mark.parametrize("name, args, expected", FAILURES, ids=[c[0] for c in FAILURES])
def test_start_up_failure_is_one_fatal_line_and_exit_code_1(failed_runs, name, args, expected):
    if name == "cuda_without_cuda" and _cuda_available():
        pytest.skip("CUDA is available, so device:=cuda starts")
    if name == "tf_without_tf2" and tf2_available():
        pytest.skip("tf2_ros is importable, so extrinsic.source:=tf starts")
    result = failed_runs[name]
    output = result.stdout + result.stderr
    fatal = [line for line in output.splitlines() if "[FATAL]" in line]
    assert result.returncode == 1, output[-3000:]
    assert len(fatal) == 1, output[-3000:]
    assert expected in fatal[0], fatal[0]
    assert "Traceback" not in output and "Error:" not in output.replace(fatal[0], ""), output[-3000:]


def _start(files, *args, offset: int = 2) -> subprocess.Popen:
    return subprocess.Popen(
        _node_command(["-p", f"checkpoint:={files['ckpt']}", "-p", "warmup:=false", *args]),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=_env(offset),
    )


def _wait_for_line(proc: subprocess.Popen, text: str, timeout: float = 180) -> list[str]:
    lines, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if text in line:
            return lines
    proc.kill()
    raise AssertionError(f"no line with {text!r}; output:\n{''.join(lines)[-3000:]}")


@pytest.mark.parametrize(
    "sig, args",
    [
        (signal.SIGINT, []),
        (signal.SIGINT, P("sync.slop:=1", "max_depth:=10", "extrinsic.translation:=[0,0,1]")),
        (signal.SIGTERM, []),
    ],
    ids=["ctrl_c", "ctrl_c_with_ints_for_doubles", "sigterm"],
)
def test_active_node_ends_cleanly_on_a_signal(files, sig, args):
    """Ints where doubles are declared start the node; a signal once active ends it with 0."""
    require_isolated_network()
    proc = _start(files, *args)
    lines = _wait_for_line(proc, "active")
    proc.send_signal(sig)
    rest, _ = proc.communicate(timeout=120)
    output = "".join(lines) + rest
    assert proc.returncode == 0, output[-3000:]
    assert "Traceback" not in output and "[FATAL]" not in output and "exit code" not in output


def _handles_sigterm(pid: int) -> bool:
    """Whether the process has installed its SIGTERM handler (the SigCgt mask in /proc)."""
    with open(f"/proc/{pid}/status") as f:
        caught = next(int(line.split()[1], 16) for line in f if line.startswith("SigCgt:"))
    return bool(caught & (1 << (signal.SIGTERM - 1)))


def test_ctrl_c_during_start_up_ends_cleanly(files):
    """Ctrl-C as soon as the process handles signals: during rclpy.init, node creation or the
    model load. (Before that the interpreter is still importing the node's modules.)"""
    require_isolated_network()
    for extra_delay in (0.0, 0.5):
        proc = _start(files, offset=3)
        deadline = time.monotonic() + 120
        while not _handles_sigterm(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.005)
        time.sleep(extra_delay)
        proc.send_signal(signal.SIGINT)
        output, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0, (extra_delay, output[-3000:])
        assert "Traceback" not in output, output[-3000:]
