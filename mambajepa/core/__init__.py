"""What every layer of the package may use: typed errors, atomic file writes and safetensors
helpers, the ``save_pretrained`` / ``from_pretrained`` mixin, the state-dict mapping machinery
and pure schedule functions. Nothing here imports another sub-package of mambajepa."""
