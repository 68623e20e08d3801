"""After `colcon test`: every ROS test ran. Reads the JUnit XML that launch_testing and pytest wrote and exits
1 if a test was skipped (a ROS test that skips where ROS 2 is present hides a failure) or none ran at all.

    python test/ros/no_skips.py BUILD_DIR/echogen_ros/test_results
"""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path


def count(results: Path) -> tuple[int, list[str]]:
    """(test cases run, "file: case" of every skipped one) over the JUnit files below `results`."""
    cases, skipped = 0, []
    for path in sorted(results.rglob("*.xml")):
        for case in ElementTree.parse(path).iter("testcase"):
            cases += 1
            if case.find("skipped") is not None:
                skipped.append(f"{path.name}: {case.get('classname')}.{case.get('name')}")
    return cases, skipped


def main(argv: list[str]) -> int:
    if len(argv) != 1 or not Path(argv[0]).is_dir():
        print("usage: no_skips.py TEST_RESULTS_DIR (a folder colcon test wrote)", file=sys.stderr)
        return 2
    cases, skipped = count(Path(argv[0]))
    for name in skipped:
        print(f"skipped while ROS 2 is present: {name}", file=sys.stderr)
    print(f"{cases} ROS test case(s), {len(skipped)} skipped")
    return 1 if skipped or cases == 0 else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
