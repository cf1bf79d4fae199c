"""Network hygiene for every test process: DDS discovery stays on this machine, in a private domain.

Set before any test imports rclpy, and inherited by every node process a test starts.
"""

import os
import random

# Jazzy and Kilted read the discovery range. ROS_LOCALHOST_ONLY (Humble's variable) is not set:
# Jazzy warns that it overrides the range, Kilted ignores it.
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ["ROS_DOMAIN_ID"] = str(random.Random(os.getpid()).randint(10, 100))
