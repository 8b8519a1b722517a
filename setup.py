"""Packaging for digitgenerator (build-system table in pyproject.toml)."""

import re
from pathlib import Path

from setuptools import setup

HERE = Path(__file__).parent
VERSION = re.search(r'__version__ = "([^"]+)"', (HERE / "digitgenerator" / "__init__.py").read_text()).group(1)

setup(
    name="digitgenerator",
    version=VERSION,
    description="Images of handwritten digit sequences from MNIST or a conditional VAE",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.10",
    packages=["digitgenerator", "digitgenerator.tf_vae_files"],
    # The pretrained model lives at the top of the repo (tf_vae_files/) and is
    # installed as the package data digitgenerator/tf_vae_files/.
    package_dir={"digitgenerator.tf_vae_files": "tf_vae_files"},
    package_data={
        "digitgenerator": ["sample_data/*.gz", "sample_data/PROVENANCE.json", "mnist_resources.txt"],
        "digitgenerator.tf_vae_files": ["cvae.npz", "config.json", "denoiser/cvae.npz", "denoiser/config.json"],
    },
    install_requires=["numpy>=1.23", "pillow>=9.1", "scipy>=1.9", "threadpoolctl>=3", "platformdirs>=3", "isal>=1.6"],
    extras_require={
        # TensorFlow is only for training the CVAE; generation and denoising run in numpy.
        "train": [
            "tensorflow-cpu>=2.16; platform_machine == 'x86_64' or platform_machine == 'AMD64'",
            "tensorflow>=2.16; platform_machine != 'x86_64' and platform_machine != 'AMD64'",
        ],
        "plot": ["matplotlib>=3.5"],
        # --dask ADDRESS: run a dataset job on a Dask distributed cluster.
        "dask": ["dask[distributed]>=2024.1"],
        # digitgenerator.torch: SequenceDataset and the CTC collate function.
        "torch": ["torch>=2.1"],
        # Readers of --format webdataset shards, used by the tests (writing needs neither).
        "webdataset": ["webdataset>=0.2.90", "datasets>=2.16"],
        "test": ["pytest>=7", "pytest-cov>=4", "hypothesis>=6", "dask[distributed]>=2024.1", "torch>=2.1",
                 "webdataset>=0.2.90", "datasets>=2.16"],
    },
    entry_points={
        "console_scripts": [
            "generate_png=digitgenerator.cli:main",
            "digitgenerator-train=digitgenerator.cli:train_main",
            "digitgenerator-dataset=digitgenerator.cli:dataset_main",
            "digitgenerator-download=digitgenerator.download:main",
        ]
    },
)
