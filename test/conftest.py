"""Network hygiene for every test process: DDS discovery stays on this machine, in a private domain.

Set before any test imports rclpy, and inherited by every node process a test starts.
"""

import os
import random

os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"  # Kilted ignores ROS_LOCALHOST_ONLY
os.environ.setdefault("ROS_LOCALHOST_ONLY", "1")  # the same for Humble
os.environ["ROS_DOMAIN_ID"] = str(random.Random(os.getpid()).randint(10, 100))
