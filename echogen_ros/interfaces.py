"""Our ROS 2 interface definitions (msg/, srv/, action/) and vision_msgs, as a rosbags typestore.

Without ROS, rosbags serialises these types from their `.msg` text; services and actions are registered
by their parts (`Ground_Request`, `Ground_Response`, `Imagine_Goal`, `Imagine_Result`, `Imagine_Feedback`),
the names rosidl gives them.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

from rosbags.typesys import Stores, get_types_from_msg, get_typestore
from rosbags.typesys.store import Typestore

PACKAGE = "echogen_ros"
_HERE = Path(__file__).resolve().parent
PARTS = {"msg": ("",), "srv": ("_Request", "_Response"), "action": ("_Goal", "_Result", "_Feedback")}
DISTROS = {"humble": Stores.ROS2_HUMBLE, "jazzy": Stores.ROS2_JAZZY}
_SEPARATOR = re.compile(r"^---\s*$", re.MULTILINE)


def interface_root() -> Path:
    """The folder holding msg/, srv/ and action/: packaged copy (wheel) or the source tree."""
    for root in (_HERE / "interface_defs" / PACKAGE, _HERE.parent):
        if (root / "msg" / "Layout.msg").is_file():
            return root
    raise FileNotFoundError(f"echogen_ros interface files not found next to {_HERE}; reinstall the package")


def split_parts(text: str, kind: str) -> list[str]:
    """Split a .srv/.action text at its `---` lines into request/response or goal/result/feedback."""
    parts = _SEPARATOR.split(text)
    if len(parts) != len(PARTS[kind]):
        raise ValueError(f"a .{kind} file needs {len(PARTS[kind])} parts separated by '---', found {len(parts)}")
    return parts


def definitions() -> dict[str, str]:
    """Type name (e.g. 'echogen_ros/srv/Ground_Request') → message definition text."""
    defs = {}
    for path in sorted((_HERE / "interface_defs" / "vision_msgs" / "msg").glob("*.msg")):
        defs[f"vision_msgs/msg/{path.stem}"] = path.read_text(encoding="utf-8")
    root = interface_root()
    for kind, suffixes in PARTS.items():
        for path in sorted((root / kind).glob(f"*.{kind}")):
            texts = split_parts(path.read_text(encoding="utf-8"), kind)
            for suffix, text in zip(suffixes, texts):
                defs[f"{PACKAGE}/{kind}/{path.stem}{suffix}"] = text
    return defs


def interface_files() -> list[Path]:
    root = interface_root()
    return sorted(p for kind in PARTS for p in (root / kind).glob(f"*.{kind}"))


@lru_cache(maxsize=4)
def typestore(distro: str = "humble") -> Typestore:
    """A rosbags typestore of `distro` with vision_msgs and echogen_ros interfaces registered."""
    if distro not in DISTROS:
        raise ValueError(f"unknown ROS distribution {distro!r}; choose from {', '.join(DISTROS)}")
    store = get_typestore(DISTROS[distro])
    types = {}
    for name, text in definitions().items():
        # Parse as a msg so that relative field types (`Layout`) resolve to pkg/msg/Layout, then file
        # the result under rosidl's own name ('pkg/srv/Name_Request', 'pkg/action/Name_Goal').
        package, _, stem = name.split("/")
        (parsed,) = get_types_from_msg(text, f"{package}/msg/{stem}").values()
        types[name] = parsed
    store.register(types)
    return store
