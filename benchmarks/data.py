"""ShapesWorld generation speed (see :mod:`mambajepa.bench.data`)."""

from mambajepa.bench.data import main

if __name__ == "__main__":
    raise SystemExit(main())
