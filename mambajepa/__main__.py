"""``python -m mambajepa ...`` is the same as the ``mambajepa`` command."""

from mambajepa.cli import main

raise SystemExit(main())
