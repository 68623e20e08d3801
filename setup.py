"""pip side of echogen_ros: the same Python package as the ROS 2 build, usable without ROS.

`build_py` also copies the ROS interface definitions (msg/, srv/, action/) into the package, so that
rosbag tooling can register them at run time from an installed wheel.
"""

import shutil
from pathlib import Path

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
INTERFACE_KINDS = ("msg", "srv", "action")


class BuildWithInterfaces(build_py):
    def run(self):
        super().run()
        target = Path(self.build_lib) / "echogen_ros" / "interface_defs" / "echogen_ros"
        for kind in INTERFACE_KINDS:
            (target / kind).mkdir(parents=True, exist_ok=True)
            for path in sorted((ROOT / kind).glob(f"*.{kind}")):
                shutil.copy2(path, target / kind / path.name)


setup(
    name="echogen_ros",
    version="0.1.0",
    description="Language-driven grounding and goal imagination for ROS 2 robots, on one EchoGen model",
    long_description=(ROOT / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["echogen_ros", "echogen_ros.*"]),
    package_data={
        "echogen_ros": [
            "interface_defs/vision_msgs/msg/*.msg",
            "interface_defs/vision_msgs/*.md",
            "model/default/*",  # the embedded tabletop model (fp16 safetensors + manifest)
        ]
    },
    install_requires=[
        "numpy>=1.24",
        "opencv-python-headless>=4.8",
        "rosbags>=0.10",
        "pyyaml>=6",
        "transforms3d>=0.4",  # composing received transforms (the runtime's 3D)
        "torch>=2.4",  # `make` installs the CPU wheel first (TORCH_SPEC); pip alone may pick a CUDA build
        "transformers>=5.0,<6",
        "tokenizers>=0.20",
        "safetensors>=0.4",
        "tqdm>=4.60",
        "pycocotools>=2.0.7",
        "torchmetrics>=1.4",
    ],
    extras_require={
        # scikit-image: its bundled photos are the out-of-domain frames of test/test_domain_check.py
        # ruff pinned: `make lint` checks the format, which another ruff release may change
        "test": [
            "pytest>=8",
            "hypothesis>=6",
            "ruff==0.17.6",
            "catkin_pkg>=1.0",
            "cmakelint>=1.4",
            "scikit-image>=0.21",
        ],
        # ONNX export and the onnxruntime backend (TensorRT comes with JetPack / NVIDIA's wheels)
        "accel": ["onnx>=1.16", "onnxscript>=0.1", "onnxruntime>=1.18"],
    },
    entry_points={"console_scripts": ["echogen = echogen_ros.cli:main"]},
    cmdclass={"build_py": BuildWithInterfaces},
)
