"""Bring up EchoGen: `ros2 launch echogen_ros bringup.launch.py [use_sim_camera:=true] [camera_topic:=...]`."""

from pathlib import Path

from ament_index_python.packages import get_package_share_directory
from launch.actions import DeclareLaunchArgument
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import LifecycleNode, Node
from launch_ros.parameter_descriptions import ParameterValue

from launch import LaunchDescription


def generate_launch_description() -> LaunchDescription:
    default_params = str(Path(get_package_share_directory("echogen_ros")) / "config" / "echogen.yaml")
    args = [
        DeclareLaunchArgument("params_file", default_value=default_params, description="node parameters YAML"),
        DeclareLaunchArgument("namespace", default_value="", description="namespace of both nodes"),
        DeclareLaunchArgument(
            "camera_topic", default_value="image", description="sensor_msgs/Image topic to ground in"
        ),
        DeclareLaunchArgument(
            "depth_topic",
            default_value="depth",
            description="depth Image registered to the colour frame (32FC1 m, 16UC1 mm)",
        ),
        DeclareLaunchArgument("camera_info_topic", default_value="camera_info", description="the camera's CameraInfo"),
        DeclareLaunchArgument("model", default_value="", description="model directory (empty: embedded default)"),
        DeclareLaunchArgument("backend", default_value="torch", description="torch | onnxruntime | tensorrt"),
        DeclareLaunchArgument("use_sim_camera", default_value="false", description="start the tabletop sim camera"),
        DeclareLaunchArgument("sim_fps", default_value="10.0", description="the sim camera's frame rate"),
    ]
    namespace = LaunchConfiguration("namespace")
    camera_topic = LaunchConfiguration("camera_topic")
    camera_remaps = [("image", camera_topic), ("depth", LaunchConfiguration("depth_topic")),
                     ("camera_info", LaunchConfiguration("camera_info_topic"))]  # fmt: skip
    echogen = LifecycleNode(
        package="echogen_ros",
        executable="echogen_node",
        name="echogen",
        namespace=namespace,
        parameters=[LaunchConfiguration("params_file"),
                    {"model_path": LaunchConfiguration("model"), "backend": LaunchConfiguration("backend")}],
        remappings=[*camera_remaps, ("image/compressed", [camera_topic, "/compressed"])],
        output="screen",
    )  # fmt: skip
    sim_camera = Node(
        package="echogen_ros",
        executable="sim_camera",
        name="sim_camera",
        namespace=namespace,
        parameters=[{"fps": ParameterValue(LaunchConfiguration("sim_fps"), value_type=float)}],
        remappings=camera_remaps,
        condition=IfCondition(LaunchConfiguration("use_sim_camera")),
        output="screen",
    )
    return LaunchDescription([*args, echogen, sim_camera])
