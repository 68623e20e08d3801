"""echogen_ros: language-driven grounding and goal imagination for ROS 2 robots.

`from echogen_ros import EchoGen` loads the model lazily (torch and transformers are imported only
when the model is used, so the world and the ROS tooling stay light).
"""

__version__ = "0.1.0"
__all__ = ["EchoGen", "Detection", "Layout", "LayoutObject"]


def __getattr__(name: str):
    if name == "EchoGen":
        from echogen_ros.model.echogen import EchoGen

        return EchoGen
    if name in ("Detection", "Layout", "LayoutObject"):
        from echogen_ros.model import layout

        return getattr(layout, name)
    raise AttributeError(f"module 'echogen_ros' has no attribute {name!r}")
