"""Encoder benchmark (see ``mambajepa.bench.encoders``): ``python benchmarks/encoders.py [--quick]``."""

import sys

from mambajepa.bench.encoders import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
