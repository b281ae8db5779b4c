"""The one place that picks a scan implementation.

``ref``     sequential loop, fp32 state (fp64 for fp64 inputs): the ground truth.
``chunked`` parallel (SSD-style / blocked) form in pure PyTorch: the default on CPU.
``fused``   ``mamba_ssm`` / ``causal_conv1d`` CUDA kernels, when importable and on CUDA (they
            take no fp64 inputs: fp64 layers run ``chunked``).

``impl="auto"`` picks the fastest available for the input's device; the environment variable
``MAMBAJEPA_SSM_IMPL=ref|chunked|fused`` forces one everywhere (tests use it).
"""

from __future__ import annotations

import functools
import importlib.util
import os
import warnings

import torch

IMPLS = ("ref", "chunked", "fused")
ENV_VAR = "MAMBAJEPA_SSM_IMPL"
_warned: set[str] = set()


@functools.cache
def kernel_available(module: str) -> bool:
    """Whether an optional kernel package (``mamba_ssm``, ``causal_conv1d``) can be imported."""
    if importlib.util.find_spec(module) is None:
        return False
    try:
        importlib.import_module(module)
    except (ImportError, OSError, RuntimeError) as err:  # broken CUDA builds raise these
        _warn_once(
            f"import:{module}", f"{module} is installed but failed to import ({err}); using PyTorch scans"
        )
        return False
    return True


def fused_available(device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> bool:
    """Fused kernels need CUDA tensors of at most fp32 precision and an importable ``mamba_ssm``."""
    if device is not None and torch.device(device).type != "cuda":
        return False
    if dtype == torch.float64:
        return False
    return torch.cuda.is_available() and kernel_available("mamba_ssm")


def _warn_once(key: str, message: str) -> None:
    if key not in _warned:
        _warned.add(key)
        warnings.warn(message, RuntimeWarning, stacklevel=3)


def resolve_impl(
    requested: str = "auto", device: torch.device | str | None = None, dtype: torch.dtype | None = None
) -> str:
    """Return ``"ref"``, ``"chunked"`` or ``"fused"`` for a layer whose input lives on ``device``.

    Args:
        requested: the layer's ``impl`` argument: ``"auto"`` or one of :data:`IMPLS`.
        device: device of the input tensor.
        dtype: dtype of the input tensor (None: any the kernels take).

    Raises:
        ValueError: ``requested`` or the environment variable names no implementation.
    """
    forced = os.environ.get(ENV_VAR, "").strip().lower()
    if forced:
        if forced not in IMPLS:
            raise ValueError(f"{ENV_VAR}={forced!r} is not one of {IMPLS}")
        requested = forced
    if requested not in (*IMPLS, "auto"):
        raise ValueError(f"impl={requested!r} is not one of {('auto', *IMPLS)}")
    if requested == "auto":
        return "fused" if fused_available(device, dtype) else "chunked"
    if requested == "fused" and not fused_available(device, dtype):
        _warn_once(
            f"fallback:{device}:{dtype}",
            f"fused SSM kernels unavailable on device {device} for {dtype} inputs "
            "(need CUDA, mamba_ssm and at most fp32); using 'chunked'",
        )
        return "chunked"
    return requested
