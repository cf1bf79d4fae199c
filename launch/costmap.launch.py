"""Start semantic_costmap_node, the costmap beside any segmenter, with config/costmap_node.yaml.

    ros2 launch denseaspp_ros costmap.launch.py
    ros2 launch denseaspp_ros costmap.launch.py params_file:=my_costmap.yaml namespace:=car1 use_sim_time:=true

log_level sets the node's own logger, not rcl's and rmw's.
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node


def _costmap_node(context):
    # The node's logger (car1.semantic_costmap_node under namespace:=car1): a bare --log-level would
    # set rcl's and rmw's too, thousands of lines a minute at debug.
    namespace = LaunchConfiguration("namespace").perform(context).strip("/").replace("/", ".")
    logger = f"{namespace}.semantic_costmap_node" if namespace else "semantic_costmap_node"
    return [
        Node(
            package="denseaspp_ros",
            executable="semantic_costmap_node",
            name="semantic_costmap_node",
            namespace=LaunchConfiguration("namespace"),
            parameters=[LaunchConfiguration("params_file"), {"use_sim_time": LaunchConfiguration("use_sim_time")}],
            arguments=["--ros-args", "--log-level", f"{logger}:={LaunchConfiguration('log_level').perform(context)}"],
            output="screen",
            emulate_tty=True,
        )
    ]


def generate_launch_description():
    default_params = os.path.join(get_package_share_directory("denseaspp_ros"), "config", "costmap_node.yaml")
    return LaunchDescription(
        [
            DeclareLaunchArgument("params_file", default_value=default_params, description="node parameters (YAML)"),
            DeclareLaunchArgument("namespace", default_value="", description="namespace of the node"),
            DeclareLaunchArgument(
                "use_sim_time", default_value="false", description="use /clock (rosbag play --clock)"
            ),
            DeclareLaunchArgument("log_level", default_value="info", description="debug, info, warn, error or fatal"),
            OpaqueFunction(function=_costmap_node),
        ]
    )
