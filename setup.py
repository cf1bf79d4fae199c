from glob import glob

from setuptools import find_packages, setup

PACKAGE = "denseaspp_ros"

setup(
    name=PACKAGE,
    version="0.1.0",
    description="DenseASPP semantic segmentation for ROS 2: semantic masks and navigation costmaps",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(exclude=["test", "test.*"]),
    package_data={PACKAGE: ["data/samples/*.png", "data/weights/*", "costmap/*.yaml"]},
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.py")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml")),
        (f"share/{PACKAGE}/config", glob("config/*.xml")),
    ],
    # torch is deliberately unpinned here: ROS installs bring python3-torch, CUDA hosts their own
    # build. The Makefile pins the CPU wheel for the self-contained virtual environment.
    install_requires=[
        "matplotlib",
        "numpy",
        "opencv-python-headless",
        "pyyaml",
        "rosbags>=0.10",
        "safetensors",
        "torch>=2.1",
        "tqdm",
    ],
    # cityscapesscripts 2.3.0 calls np.in1d, which NumPy 2.4 removed: pin NumPy where the
    # official evaluation runs, so tests exercise it unmodified.
    # Exported backends: ONNX export (torch.onnx's dynamo exporter needs onnxscript) checked under
    # ONNX Runtime; OpenVINO adds its runtime and NNCF for int8.
    extras_require={
        "test": ["pytest", "cityscapesscripts", "numpy<2.4"],
        "onnx": ["onnx>=1.16", "onnxruntime>=1.19", "onnxscript>=0.5"],
        "openvino": ["onnx>=1.16", "onnxruntime>=1.19", "onnxscript>=0.5", "openvino>=2024.4", "nncf>=2.14"],
    },
    zip_safe=False,
    entry_points={
        "console_scripts": [
            "denseaspp = denseaspp_ros.ros.entry:denseaspp",
            "segmentation_node = denseaspp_ros.ros.entry:segmentation_node",
            "semantic_costmap_node = denseaspp_ros.ros.entry:semantic_costmap_node",
        ]
    },
)
