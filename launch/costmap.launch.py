"""Start semantic_costmap_node, the costmap beside any segmenter, with config/costmap_node.yaml.

    ros2 launch denseaspp_ros costmap.launch.py
    ros2 launch denseaspp_ros costmap.launch.py params_file:=my_costmap.yaml namespace:=car1 use_sim_time:=true
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node


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
            Node(
                package="denseaspp_ros",
                executable="semantic_costmap_node",
                name="semantic_costmap_node",
                namespace=LaunchConfiguration("namespace"),
                parameters=[LaunchConfiguration("params_file"), {"use_sim_time": LaunchConfiguration("use_sim_time")}],
                arguments=["--ros-args", "--log-level", LaunchConfiguration("log_level")],
                output="screen",
                emulate_tty=True,
            ),
        ]
    )
