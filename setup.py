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

FOLDERS = ("student", "envs", "teachers", "benchmarks")


def subpackages() -> dict[str, str]:
    """``metacurriculum.<folder>[.<sub>...]`` -> its directory, for every folder with an __init__."""
    mapping = {"metacurriculum": "metacurriculum"}
    for folder in FOLDERS:
        for init in sorted((ROOT / folder).rglob("__init__.py")):
            relative = init.parent.relative_to(ROOT)
            mapping[".".join(("metacurriculum", *relative.parts))] = relative.as_posix()
    return mapping


PACKAGES = subpackages()

setup(
    name="metacurriculum",
    version=VERSION,
    description="Curriculum-driven meta-learning: MAML students as Gymnasium environments, "
    "interchangeable teachers, and a benchmark harness.",
    long_description=(ROOT / "README.md").read_text(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=list(PACKAGES),
    package_dir=PACKAGES,
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
        "ray": ["ray>=2.60,<3"],
        "gmm": ["scikit-learn>=1.3"],
        "tensorboard": ["tensorboard>=2.10"],
        "wandb": ["wandb>=0.19.10"],
        "syllabus": ["syllabus-rl>=0.7"],
        "dev": [
            "pytest>=7",
            "ruff>=0.5",
            "scipy>=1.10",
            "matplotlib>=3.7",
            "stable-baselines3>=2.4,<3",
            "pillow>=9",
            "ray>=2.60,<3",
            "scikit-learn>=1.3",
            "tensorboard>=2.10",
            "wandb>=0.19.10",
            "syllabus-rl>=0.7",
        ],
    },
    entry_points={"console_scripts": ["metacurriculum=metacurriculum.cli:main"]},
    license="MIT",
    classifiers=[
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
)
