"""digitgenerator: images of handwritten digit sequences, from MNIST or a conditional VAE."""

__version__ = "1.7.0"

from .generator import Digitgenerator  # noqa: E402
from .model import Vae  # noqa: E402

__all__ = ["Digitgenerator", "Vae", "__version__"]
