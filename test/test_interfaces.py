"""ROS interface files parse, register into rosbags typestores and round-trip through CDR; package
metadata validates (catkin_pkg) and CMakeLists.txt lists every interface and passes cmakelint."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from rosbags.typesys import get_types_from_msg

from echogen_ros import interfaces

ROOT = Path(__file__).resolve().parents[1]
EXPECTED = {
    "echogen_ros/msg/LabeledBox",
    "echogen_ros/msg/Layout",
    "echogen_ros/msg/RelationCheck",
    "echogen_ros/srv/Ground_Request",
    "echogen_ros/srv/Ground_Response",
    "echogen_ros/srv/Verify_Request",
    "echogen_ros/srv/Verify_Response",
    "echogen_ros/action/Imagine_Goal",
    "echogen_ros/action/Imagine_Result",
    "echogen_ros/action/Imagine_Feedback",
}


@pytest.mark.parametrize("path", interfaces.interface_files(), ids=lambda p: p.name)
def test_each_part_parses(path: Path) -> None:
    kind = path.suffix[1:]
    parts = interfaces.split_parts(path.read_text(), kind)
    for suffix, text in zip(interfaces.PARTS[kind], parts):
        types = get_types_from_msg(text, f"echogen_ros/msg/{path.stem}{suffix}")
        assert len(types) == 1
        ((_, fields),) = types.values()
        assert fields, f"{path.name}{suffix} has no fields"


def test_split_parts_rejects_a_wrong_number_of_parts() -> None:
    with pytest.raises(ValueError, match="2 parts"):
        interfaces.split_parts("string a\n", "srv")


@pytest.mark.parametrize("distro", ["humble", "jazzy"])
def test_typestore_registers_everything(distro: str) -> None:
    store = interfaces.typestore(distro)
    assert set(store.types) >= EXPECTED
    assert "vision_msgs/msg/Detection2DArray" in store.types
    assert store.types["echogen_ros/msg/RelationCheck"].CANNOT_TELL == 2


def _value(store, msgtype: str, depth: int = 0):
    """A message of `msgtype` with every field set to a non-default value."""
    cls = store.types[msgtype]
    kwargs = {}
    for name, (_, (kind, spec)) in zip(cls.__dataclass_fields__, store.fielddefs[msgtype][1]):
        kwargs[name] = _field(store, kind, spec, depth)
    return cls(**kwargs)


def _field(store, kind, spec, depth):
    from rosbags.typesys.base import Nodetype

    if kind == Nodetype.BASE:
        name = spec[0]
        if name == "string":
            return "x" * (depth + 1)
        if name == "bool":
            return True
        return {"float32": 1.5, "float64": 2.25}.get(name, 3)
    if kind == Nodetype.NAME:
        return _value(store, spec, depth + 1)
    inner_kind, inner_spec = spec[0]
    if inner_kind == Nodetype.BASE and inner_spec[0] not in ("string",):
        dtype = {"float64": np.float64, "float32": np.float32, "uint8": np.uint8}.get(inner_spec[0], np.int64)
        count = spec[1] if kind == Nodetype.ARRAY else 2
        return np.arange(count or 2).astype(dtype)
    count = spec[1] if kind == Nodetype.ARRAY else 2
    return [_field(store, inner_kind, inner_spec, depth + 1) for _ in range(count)]


@pytest.mark.parametrize("msgtype", sorted(EXPECTED))
def test_cdr_round_trip(msgtype: str) -> None:
    store = interfaces.typestore("humble")
    message = _value(store, msgtype)
    raw = store.serialize_cdr(message, msgtype)
    back = store.deserialize_cdr(raw, msgtype)
    assert store.serialize_cdr(back, msgtype) == raw
    assert repr(back).count("x") >= 1


def test_package_xml_validates() -> None:
    from catkin_pkg.package import parse_package

    package = parse_package(str(ROOT / "package.xml"))
    package.validate()
    assert package.name == "echogen_ros" and package.package_format == 3
    assert package.get_build_type() == "ament_cmake"
    run_deps = {d.name for d in package.exec_depends + package.build_export_depends}
    assert {
        "rclpy",
        "sensor_msgs",
        "std_msgs",
        "vision_msgs",
        "geometry_msgs",
        "action_msgs",
        "launch_ros",
        "python3-numpy",
        "python3-opencv",
        "rosidl_default_runtime",
    } <= run_deps
    assert "rosidl_interface_packages" in [g.name for g in package.member_of_groups]


def test_cmakelists_generates_every_interface_file() -> None:
    text = (ROOT / "CMakeLists.txt").read_text()
    listed = set(re.findall(r'"((?:msg|srv|action)/\w+\.(?:msg|srv|action))"', text))
    on_disk = {str(p.relative_to(ROOT)) for p in interfaces.interface_files()}
    assert listed == on_disk
    # rosidl_generate_interfaces() installs the package already: a second call is a CMake error (Humble+)
    code = "\n".join(line.split("#", 1)[0] for line in text.splitlines())
    assert "ament_python_install_package" not in code
    installed_beside = r"install\(DIRECTORY \$\{PROJECT_NAME\}/\s+DESTINATION \$\{PYTHON_INSTALL_DIR\}/"
    assert re.search(installed_beside, code)


def test_cmakelists_passes_cmakelint() -> None:
    """ament_lint_cmake wraps cmakelint; run cmakelint with ament's filters where it is installed."""
    if shutil.which("ament_lint_cmake"):
        command = ["ament_lint_cmake", str(ROOT / "CMakeLists.txt")]
    else:
        pytest.importorskip("cmakelint", reason="neither ament_lint_cmake nor cmakelint is installed")
        command = [
            sys.executable,
            "-m",
            "cmakelint.main",
            "--filter=-convention/filename,-linelength,-package/consistency,-readability/wonkycase",
            str(ROOT / "CMakeLists.txt"),
        ]
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_no_python_module_shadows_rosidl_packages() -> None:
    package = ROOT / "echogen_ros"
    for name in ("msg", "srv", "action"):
        assert not (package / name).exists() and not (package / f"{name}.py").exists()


def test_wheel_ships_interface_definitions(tmp_path: Path) -> None:
    """`pip install` without ROS gets msg/, srv/, action/ inside the package (for rosbag tooling)."""
    pytest.importorskip("setuptools", reason="building a wheel needs setuptools in this environment")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]

    (wheel,) = tmp_path.glob("echogen_ros-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for path in interfaces.interface_files():
        assert f"echogen_ros/interface_defs/echogen_ros/{path.parent.name}/{path.name}" in names
