"""Install one package, ``metacurriculum``, from the folders at the repository root.

The repository shows the architecture at its root (``student/``, ``envs/``,
``teachers/``, ``benchmarks/``); ``package_dir`` maps each folder into the
package so that nothing generic (``envs``, ``student``) lands in a user's
site-packages.
"""

import re
from pathlib import Path

from setuptools import setup

ROOT = Path(__file__).parent
VERSION = re.search(
    r'__version__ = "([^"]+)"', (ROOT / "metacurriculum" / "__init__.py").read_text()
).group(1)

SUBPACKAGES = ("student", "envs", "teachers", "benchmarks")

setup(
    name="metacurriculum",
    version=VERSION,
    description="Curriculum-driven meta-learning: MAML students as Gymnasium environments, "
    "interchangeable teachers, and a benchmark harness.",
    long_description=(ROOT / "README.md").read_text(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=["metacurriculum"] + [f"metacurriculum.{name}" for name in SUBPACKAGES],
    package_dir={"metacurriculum": "metacurriculum"}
    | {f"metacurriculum.{name}": name for name in SUBPACKAGES},
    install_requires=[
        "torch>=2.4,<3",
        "torchvision>=0.19",
        "numpy>=1.24",
        "gymnasium>=1.0,<2",
        "tqdm>=4.60",
    ],
    extras_require={
        "sb3": ["stable-baselines3>=2.4,<3"],
        "plots": ["matplotlib>=3.7"],
        "stats": ["scipy>=1.10"],
        "dev": [
            "pytest>=7",
            "ruff>=0.5",
            "scipy>=1.10",
            "matplotlib>=3.7",
            "stable-baselines3>=2.4,<3",
            "pillow>=9",
        ],
    },
    entry_points={"console_scripts": ["metacurriculum=metacurriculum.cli:main"]},
    license="MIT",
    classifiers=[
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
)
