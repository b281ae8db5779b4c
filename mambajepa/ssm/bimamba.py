"""Bidirectional mixers: a forward scan plus a scan of the time-reversed sequence.

Dimensions: ``B`` batch, ``L`` length, ``D`` width, ``E`` inner width.

:class:`BiMamba` is VideoMamba's / Vim's "bimamba v2" Mamba-1 layer: one ``in_proj`` and one
``out_proj`` shared by both directions, and a second set of SSM parameters for the reversed
direction named ``conv1d_b``, ``x_proj_b``, ``dt_proj_b``, ``A_b_log``, ``D_b`` (so VideoMamba
checkpoints load with ``strict=True``). :class:`Bidirectional` wraps any two mixers (Mamba-2,
Mamba-3, ...) as ``merge(fwd(x), flip(bwd(flip(x))))``.

A bidirectional layer sees the whole sequence; it has no streaming state (use a causal mixer to
stream).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from mambajepa.core.errors import ConfigError
from mambajepa.ssm.dispatch import resolve_impl
from mambajepa.ssm.mamba1 import Mamba1


def _no_streaming(layer: nn.Module) -> ConfigError:
    return ConfigError(
        f"{type(layer).__name__} is bidirectional and has no streaming state; "
        "use a causal mixer (Mamba1/Mamba2/Mamba3) for state=/return_state=/step()"
    )


class _NoStreaming:
    """The streaming interface of a causal mixer, refused: a bidirectional mixer needs the whole sequence."""

    def init_state(self, batch_size: int, device=None, dtype=None):
        raise _no_streaming(self)

    def step(self, x_t: torch.Tensor, state):
        raise _no_streaming(self)


class BiMamba(_NoStreaming, Mamba1):
    """Mamba-1 with a time-reversed second scan ("bimamba v2", VideoMamba/Vim parameter names).

    ``y = out_proj((ssm_f(x) + flip(ssm_b(flip(x)))) * silu(z)) [/ 2 if divide_out]`` where both
    SSMs read the same ``in_proj`` output and the gate ``z`` is shared.

    Args:
        d_model: model width D.
        divide_out: halve the sum of the two directions (Vim's ``if_devide_out``).
        **kwargs: every argument of :class:`~mambajepa.ssm.mamba1.Mamba1`.
    """

    def __init__(self, d_model: int, divide_out: bool = False, **kwargs):
        super().__init__(d_model, **kwargs)
        self.divide_out = divide_out
        self.conv1d_b, self.x_proj_b, self.dt_proj_b, self.A_b_log, self.D_b = self._ssm_params(
            *self._ssm_init_args
        )

    def forward(self, x: torch.Tensor, state=None, return_state: bool = False) -> torch.Tensor:
        """Mix a whole sequence in both directions.

        Args:
            x: ``(B, L, D)``.
            state, return_state: must be left unset (no streaming).

        Returns:
            ``(B, L, D)``.

        Raises:
            ConfigError: a state was passed or requested.
            ShapeError: x is not ``(B, L, d_model)``.
        """
        if state is not None or return_state:
            raise _no_streaming(self)
        self._check_input(x, 3)
        impl = resolve_impl(self.impl, x.device, x.dtype)
        xs, z = self._in_proj_parts(x)  # (B, E, L), (L, B, E)
        y_f, _ = self._scan_direction(
            xs, self.conv1d, self.x_proj, self.dt_proj, self.A_log, self.D, None, impl
        )
        y_b, _ = self._scan_direction(
            xs.flip(-1), self.conv1d_b, self.x_proj_b, self.dt_proj_b, self.A_b_log, self.D_b, None, impl
        )
        y = y_f + y_b.flip(0)  # (L, B, E)
        out = self.out_proj((y * F.silu(z.to(y.dtype))).to(x.dtype)).transpose(0, 1).contiguous()  # (B, L, D)
        return out / 2 if self.divide_out else out


class Bidirectional(_NoStreaming, nn.Module):
    """Run ``fwd`` on the sequence and ``bwd`` on its time reversal, then merge.

    Args:
        fwd: mixer for the forward direction, ``(B, L, D) -> (B, L, D)``.
        bwd: mixer for the reversed direction (same interface; own parameters).
        merge: ``"add"``, ``"mean"`` or ``"concat"`` (concatenate and project back with ``proj``).
        d_model: width D (needed for ``"concat"``).

    Raises:
        ConfigError: unknown ``merge`` or ``"concat"`` without ``d_model``.
    """

    def __init__(self, fwd: nn.Module, bwd: nn.Module, merge: str = "add", d_model: int | None = None):
        super().__init__()
        if merge not in ("add", "mean", "concat"):
            raise ConfigError(f"merge={merge!r} is not one of ('add', 'mean', 'concat')")
        self.fwd = fwd
        self.bwd = bwd
        self.merge = merge
        if merge == "concat":
            if d_model is None:
                raise ConfigError("merge='concat' needs d_model")
            self.proj = nn.Linear(2 * d_model, d_model, bias=False)

    @classmethod
    def from_cls(cls, mixer_cls: Callable[..., nn.Module], d_model: int, merge: str = "add", **kwargs):
        """Two fresh mixers ``mixer_cls(d_model, **kwargs)`` wrapped bidirectionally."""
        return cls(mixer_cls(d_model, **kwargs), mixer_cls(d_model, **kwargs), merge=merge, d_model=d_model)

    def forward(self, x: torch.Tensor, state=None, return_state: bool = False) -> torch.Tensor:
        """Mix a whole sequence in both directions.

        Args:
            x: ``(B, L, D)``.
            state, return_state: must be left unset (no streaming).

        Returns:
            ``(B, L, D)``.

        Raises:
            ConfigError: a state was passed or requested.
        """
        if state is not None or return_state:
            raise _no_streaming(self)
        y_f = self.fwd(x)
        y_b = self.bwd(x.flip(1)).flip(1)
        if self.merge == "add":
            return y_f + y_b
        if self.merge == "mean":
            return (y_f + y_b) / 2
        return self.proj(torch.cat([y_f, y_b], dim=-1))
