"""python -m digitgenerator: the same as generate_png."""

import sys

from .cli import main

sys.exit(main(prog="python -m digitgenerator"))
