"""Suite-wide settings: small thread pools (2-core CI) and deterministic hypothesis runs."""

import os

import torch

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))

try:
    from hypothesis import settings

    settings.register_profile("ci", deadline=None, derandomize=True, max_examples=25)
    settings.load_profile("ci")
except ImportError:  # hypothesis is a dev extra; modules using it skip via pytest.importorskip
    pass
