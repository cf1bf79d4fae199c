"""Start segmentation_node with the package's config/params.yaml (or params_file:=...).

    ros2 launch denseaspp_ros seg.launch.py weights:=/path/denseASPP161.pkl
    ros2 launch denseaspp_ros seg.launch.py weights:=demo device:=cpu
    ros2 launch denseaspp_ros seg.launch.py params_file:=my_cameras.yaml namespace:=car1 use_sim_time:=true

weights, model and device override model.weights, model.name and model.device only when given.
log_level sets the node's own logger (log_level:=debug: each frame's stages), not rcl's and rmw's.
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node


def _logger_name(context, node):
    """The node's logger (car1.segmentation_node under namespace:=car1): a bare --log-level would set
    rcl's and rmw's too, thousands of lines a minute at debug."""
    namespace = LaunchConfiguration("namespace").perform(context).strip("/").replace("/", ".")
    return f"{namespace}.{node}" if namespace else node


def _segmentation_node(context):
    parameters = [LaunchConfiguration("params_file"), {"use_sim_time": LaunchConfiguration("use_sim_time")}]
    # Only an argument actually given overrides its parameter: an empty one would wipe what the
    # params_file says (its checkpoint, network or device). Later entries override earlier ones.
    weights = LaunchConfiguration("weights").perform(context)
    if weights:
        parameters.append({"model.weights": weights})
    model = LaunchConfiguration("model").perform(context)
    if model:
        parameters.append({"model.name": model})
    device = LaunchConfiguration("device").perform(context)
    if device:
        parameters.append({"model.device": device})
    log_level = LaunchConfiguration("log_level").perform(context)
    return [
        Node(
            package="denseaspp_ros",
            executable="segmentation_node",
            name="segmentation_node",
            namespace=LaunchConfiguration("namespace"),
            parameters=parameters,
            arguments=["--ros-args", "--log-level", f"{_logger_name(context, 'segmentation_node')}:={log_level}"],
            output="screen",
            emulate_tty=True,
        )
    ]


def generate_launch_description():
    default_params = os.path.join(get_package_share_directory("denseaspp_ros"), "config", "params.yaml")
    return LaunchDescription(
        [
            DeclareLaunchArgument("params_file", default_value=default_params, description="node parameters (YAML)"),
            DeclareLaunchArgument(
                "weights", default_value="", description="checkpoint (.pkl/.pt/.safetensors); overrides model.weights"
            ),
            DeclareLaunchArgument(
                "model",
                default_value="",
                description="network (DenseASPP161, MobileNetDenseASPP, ...); overrides model.name",
            ),
            DeclareLaunchArgument(
                "device", default_value="", description="auto, cpu, cuda or cuda:N; overrides model.device"
            ),
            DeclareLaunchArgument("namespace", default_value="", description="namespace of the node"),
            DeclareLaunchArgument(
                "use_sim_time", default_value="false", description="use /clock (rosbag play --clock)"
            ),
            DeclareLaunchArgument("log_level", default_value="info", description="debug, info, warn, error or fatal"),
            OpaqueFunction(function=_segmentation_node),
        ]
    )
