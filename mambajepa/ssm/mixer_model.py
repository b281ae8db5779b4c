"""``MixerModel``: (embedding ->) a stack of :class:`Block` s -> final norm, with streaming state.

Dimensions: ``B`` batch, ``L`` length, ``D`` ``d_model``, ``V`` vocabulary size.

State-dict keys are those of ``mamba_ssm.models.mixer_seq_simple.MixerModel``:
``embedding.weight``, ``layers.{i}.norm.weight``, ``layers.{i}.mixer.*``, ``layers.{i}.norm2.weight``
and ``layers.{i}.mlp.fc1/fc2.weight`` (with ``d_intermediate > 0``), ``norm_f.weight``.

The mixer of every layer comes from ``ssm_cfg``: ``{"layer": "Mamba1" | "Mamba2" | "Mamba3", **kwargs}``
where the kwargs are the mixer's constructor arguments. ``bidirectional=True`` turns every mixer
into a forward + time-reversed pair (:class:`~mambajepa.ssm.bimamba.BiMamba` for Mamba-1,
:class:`~mambajepa.ssm.bimamba.Bidirectional` otherwise); such a stack cannot stream.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import torch
from torch import nn

from mambajepa.core.errors import ConfigError, ShapeError
from mambajepa.ssm.bimamba import Bidirectional, BiMamba
from mambajepa.ssm.block import Block, GatedMLP
from mambajepa.ssm.mamba1 import Mamba1
from mambajepa.ssm.mamba2 import Mamba2
from mambajepa.ssm.norm import RMSNorm

LAYERS = ("Mamba1", "Mamba2", "Mamba3")


def mixer_class(layer: str) -> type[nn.Module]:
    """The mixer class named ``layer`` (Mamba-3 is imported on first use).

    Raises:
        ConfigError: unknown layer name.
    """
    if layer == "Mamba1":
        return Mamba1
    if layer == "Mamba2":
        return Mamba2
    if layer == "Mamba3":
        from mambajepa.ssm.mamba3 import Mamba3

        return Mamba3
    raise ConfigError(f"ssm_cfg['layer']={layer!r} is not one of {LAYERS}")


def make_mixer_cls(
    ssm_cfg: dict[str, Any] | None = None,
    bidirectional: bool = False,
    bidirectional_merge: str = "add",
    layer_idx: int | None = None,
    device=None,
    dtype=None,
) -> Callable[[int], nn.Module]:
    """A ``mixer_cls(dim)`` for :class:`Block` from an ``ssm_cfg`` dict.

    Args:
        ssm_cfg: ``{"layer": name, **constructor kwargs}``; default ``{"layer": "Mamba1"}``.
        bidirectional: forward + time-reversed mixers.
        bidirectional_merge: merge of the two directions for Mamba-2/3 (``"add"``, ``"mean"``,
            ``"concat"``); Mamba-1 always adds (VideoMamba).
        layer_idx: passed to the mixer.
        device, dtype: factory arguments.

    Returns:
        A callable building the mixer for width ``dim``.

    Raises:
        ConfigError: unknown layer name.
    """
    cfg = dict(ssm_cfg or {})
    layer = cfg.pop("layer", "Mamba1")
    cls = mixer_class(layer)
    kwargs = {**cfg, "layer_idx": layer_idx, "device": device, "dtype": dtype}
    if not bidirectional:
        return partial(cls, **kwargs)
    if layer == "Mamba1":
        return partial(BiMamba, **kwargs)
    return partial(Bidirectional.from_cls, cls, merge=bidirectional_merge, **kwargs)


def init_mixer_weights(
    module: nn.Module,
    n_layer: int,
    initializer_range: float = 0.02,
    rescale_prenorm_residual: bool = True,
    n_residuals_per_layer: int = 1,
) -> None:
    """The ``mamba_ssm`` initialisation, applied with ``model.apply(partial(init_mixer_weights, ...))``.

    Zero linear biases (except those marked ``_no_reinit``), ``N(0, initializer_range)``
    embeddings, and ``out_proj`` / ``fc2`` weights scaled by ``1 / sqrt(n_residuals_per_layer *
    n_layer)`` so the residual stream does not grow with depth (GPT-2's scheme).
    """
    if isinstance(module, nn.Linear):
        if module.bias is not None and not getattr(module.bias, "_no_reinit", False):
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Embedding):
        nn.init.normal_(module.weight, std=initializer_range)
    if rescale_prenorm_residual:
        for child_name, child in module.named_children():
            if child_name in ("out_proj", "fc2") and isinstance(child, nn.Linear):
                nn.init.kaiming_uniform_(child.weight, a=math.sqrt(5))
                with torch.no_grad():
                    child.weight /= math.sqrt(n_residuals_per_layer * n_layer)


@dataclass
class MixerState:
    """Streaming state of a :class:`MixerModel`: one mixer state per layer."""

    layers: list[Any]


class MixerModel(nn.Module):
    """A stack of residual Mamba blocks with a final norm.

    Args:
        d_model: width D.
        n_layer: number of blocks.
        vocab_size: size of the token embedding; None for a stack fed with ``inputs_embeds``
            (vision/text encoders and predictors).
        ssm_cfg: mixer choice and arguments, ``{"layer": "Mamba1" | "Mamba2" | "Mamba3", ...}``.
        d_intermediate: hidden width of a gated MLP after each mixer (0: none).
        rms_norm: RMSNorm (else LayerNorm) for the block norms and ``norm_f``.
        norm_epsilon: epsilon of those norms.
        residual_in_fp32: keep the residual stream in fp32.
        fused_add_norm: accepted for ``mamba_ssm`` compatibility (same math either way).
        bidirectional: forward + time-reversed mixers (no streaming then).
        bidirectional_merge: merge of the two directions for Mamba-2/3.
        drop_path_rate: stochastic depth, increasing linearly from 0 to this value over the layers.
        initializer_cfg: keyword arguments of :func:`init_mixer_weights`.
        device, dtype: factory arguments.
    """

    def __init__(
        self,
        d_model: int,
        n_layer: int,
        vocab_size: int | None = None,
        ssm_cfg: dict[str, Any] | None = None,
        d_intermediate: int = 0,
        rms_norm: bool = True,
        norm_epsilon: float = 1e-5,
        residual_in_fp32: bool = False,
        fused_add_norm: bool = False,
        bidirectional: bool = False,
        bidirectional_merge: str = "add",
        drop_path_rate: float = 0.0,
        initializer_cfg: dict[str, Any] | None = None,
        device=None,
        dtype=None,
    ):
        super().__init__()
        factory = {"device": device, "dtype": dtype}
        self.d_model = d_model
        self.residual_in_fp32 = residual_in_fp32
        self.bidirectional = bidirectional
        if vocab_size is not None:
            self.embedding = nn.Embedding(vocab_size, d_model, **factory)
        else:
            self.embedding = None
        norm_base = RMSNorm if rms_norm else nn.LayerNorm
        norm_cls = partial(norm_base, eps=norm_epsilon, **factory)
        mlp_cls = (
            partial(GatedMLP, hidden_features=d_intermediate, **factory)
            if d_intermediate > 0
            else nn.Identity
        )
        rates = [drop_path_rate * i / max(n_layer - 1, 1) for i in range(n_layer)]
        self.layers = nn.ModuleList(
            Block(
                d_model,
                make_mixer_cls(ssm_cfg, bidirectional, bidirectional_merge, layer_idx=i, **factory),
                mlp_cls,
                norm_cls=norm_cls,
                fused_add_norm=fused_add_norm,
                residual_in_fp32=residual_in_fp32,
                drop_path=rates[i],
            )
            for i in range(n_layer)
        )
        self.norm_f = norm_cls(d_model)
        self.apply(
            partial(
                init_mixer_weights,
                n_layer=n_layer,
                n_residuals_per_layer=1 if d_intermediate == 0 else 2,
                **(initializer_cfg or {}),
            )
        )

    def init_state(self, batch_size: int, device=None, dtype=None) -> MixerState:
        """Zero streaming state for ``batch_size`` sequences."""
        return MixerState([layer.init_state(batch_size, device=device, dtype=dtype) for layer in self.layers])

    def _embed(self, input_ids: torch.Tensor | None, inputs_embeds: torch.Tensor | None) -> torch.Tensor:
        if (input_ids is None) == (inputs_embeds is None):
            raise ConfigError("pass exactly one of input_ids and inputs_embeds")
        if inputs_embeds is not None:
            if inputs_embeds.shape[-1] != self.d_model:
                raise ShapeError(
                    f"inputs_embeds last dim {inputs_embeds.shape[-1]} != d_model={self.d_model}"
                )
            return inputs_embeds
        if self.embedding is None:
            raise ConfigError("this MixerModel has no embedding (vocab_size=None); pass inputs_embeds")
        return self.embedding(input_ids)

    def _final_norm(self, hidden: torch.Tensor, residual: torch.Tensor | None) -> torch.Tensor:
        residual = hidden if residual is None else residual + hidden
        weight = getattr(self.norm_f, "weight", None)
        return self.norm_f(residual if weight is None else residual.to(weight.dtype))

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        state: MixerState | None = None,
        return_state: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, MixerState]:
        """Run the stack on a sequence, optionally continuing from ``state``.

        Args:
            input_ids: token ids ``(B, L)`` (with an embedding).
            inputs_embeds: ``(B, L, D)`` instead of ids.
            state: state left by a previous call; None starts fresh.
            return_state: also return the state after the last position.

        Returns:
            hidden states ``(B, L, D)`` after ``norm_f``, or ``(hidden, state)``.

        Raises:
            ConfigError: both or neither input given; streaming a bidirectional stack.
            ShapeError: inputs_embeds of the wrong width.
        """
        hidden = self._embed(input_ids, inputs_embeds)
        residual = None
        streaming = return_state or state is not None
        new_states = []
        for i, layer in enumerate(self.layers):
            if streaming:
                hidden, residual, s = layer(
                    hidden, residual, state=None if state is None else state.layers[i], return_state=True
                )
                new_states.append(s)
            else:
                hidden, residual = layer(hidden, residual)
        out = self._final_norm(hidden, residual)
        return (out, MixerState(new_states)) if return_state else out

    def step(
        self,
        state: MixerState,
        input_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, MixerState]:
        """Advance one position in O(1): ids ``(B,)`` or embeddings ``(B, D)`` -> hidden ``(B, D)``.

        Raises:
            ConfigError: both or neither input given; a bidirectional stack.
        """
        hidden = self._embed(input_ids, inputs_embeds)
        residual = None
        new_states = []
        for layer, s in zip(self.layers, state.layers):
            hidden, residual, s = layer.step(hidden, residual, s)
            new_states.append(s)
        return self._final_norm(hidden, residual), MixerState(new_states)
