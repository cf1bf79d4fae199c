"""DenseASPP semantic segmentation for ROS 2.

The core (``model``, ``inference``, ``labels``) is plain PyTorch/numpy and imports no ROS;
only ``denseaspp_ros.ros`` talks to rclpy.
"""

__version__ = "0.1.0"
