"""What the nodes decide between a message arriving and a result leaving, without ROS: which
frames run (``scheduling``), what a stamp is worth (``stamps``) and what is counted (``stats``).
``denseaspp_ros.ros`` wires them to topics and timers."""
