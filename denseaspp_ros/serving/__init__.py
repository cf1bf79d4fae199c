"""What the nodes decide between a message arriving and a result leaving, without ROS: which
frames run (``scheduling``), what a stamp is worth (``stamps``), what is counted (``stats``) and
what the counts add up to in /diagnostics (``health``). ``denseaspp_ros.ros`` wires them to
topics and timers."""
