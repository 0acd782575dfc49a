"""vc4infer: a neural-network inference engine for the VideoCore IV GPU (Raspberry Pi Zero/1/2/3)."""
from setuptools import find_packages, setup

# Runtime dependencies must install on Raspberry Pi OS (32- and 64-bit, ARMv6 included):
# numba, onnxruntime and the reference runtimes therefore live in extras.
setup(
    name="vc4infer",
    version="0.1.0",
    description="Inference engine for the Raspberry Pi VideoCore IV GPU (QPU kernels, emulator, host runtime)",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.9",
    # vc4infer/data holds no Python: listed as a package so setuptools ships it without a warning
    packages=find_packages(include=["vc4infer", "vc4infer.*", "qpu_kernels", "qpu_kernels.*",
                                    "hostside", "hostside.*"]) + ["vc4infer.data"],
    package_data={"vc4infer.data": ["*.txt", "*.json"]},
    include_package_data=True,
    # flatbuffers + tflite (generated schema bindings) read .tflite files; both are pure Python.
    install_requires=["numpy>=1.21", "click>=8.0", "pillow>=8.0", "flatbuffers>=2.0", "tflite>=2.10"],
    extras_require={
        # numba compiles the emulator's hot loop; without it the emulator runs in pure Python.
        "emu": ["numba>=0.57"],
        "camera": ["picamera2"],
        # vc4infer bench --plot
        "plot": ["matplotlib"],
        # vc4infer camera --record out.mp4 (FFmpeg bindings; Raspberry Pi OS: apt install python3-av)
        "record": ["av"],
        "dev": [
            "pytest>=7", "pytest-xdist", "hypothesis", "numba>=0.57", "onnx>=1.14", "onnxruntime>=1.16",
            "ai-edge-litert", "flatbuffers>=23", "ruff", "matplotlib", "av",
        ],
    },
    entry_points={"console_scripts": ["vc4infer=vc4infer.cli:main"]},
    classifiers=[
        "Programming Language :: Python :: 3",
        "Operating System :: POSIX :: Linux",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
)
