"""Hygiene for every test process: DDS discovery stays on this machine, in a private domain; engines
are cached in a folder of the session.

Set before any test imports rclpy, and inherited by every node process a test starts.
"""

import atexit
import os
import random
import shutil
import tempfile

import pytest

# Jazzy and Kilted read the discovery range. ROS_LOCALHOST_ONLY (Humble's variable) is not set:
# Jazzy warns that it overrides the range, Kilted ignores it.
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ["ROS_DOMAIN_ID"] = str(random.Random(os.getpid()).randint(10, 100))

# Exported engines (ONNX, OpenVINO IR) go to one folder per test session, shared by its tests and
# the node processes they start: the user's cache is never touched, and each engine is built once.
os.environ["DENSEASPP_CACHE"] = tempfile.mkdtemp(prefix="denseaspp-cache-")
atexit.register(shutil.rmtree, os.environ["DENSEASPP_CACHE"], True)


@pytest.fixture(scope="module")
def client(request):
    """The test module's own ROS node, for the publishers and subscriptions that talk to nodes under test."""
    from node_harness import RosClient  # rclpy is imported by the modules that talk to nodes only

    ros = RosClient(f"{request.module.__name__}_client")
    yield ros
    ros.close()
