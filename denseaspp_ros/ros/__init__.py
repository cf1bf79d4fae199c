"""ROS 2 layer: the only place that imports rclpy and ROS messages."""
