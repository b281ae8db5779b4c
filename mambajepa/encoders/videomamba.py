"""VideoMamba (Li et al., 2024): a video encoder on bidirectional Mamba blocks, with streaming.

A clip ``(B, C, T, H, W)`` is cut by a ``Conv3d`` with kernel ``(kernel_size, p, p)`` into a
``(gt, gh, gw)`` token grid; a CLS token is put in front, every patch token gets a spatial
(per-frame) and a temporal position embedding, and the sequence ``[CLS, frame 0, frame 1, ...]``
runs through residual blocks ``norm -> BiMamba`` (the "bimamba v2" layer of VideoMamba and Vim),
a final norm, and an optional pooling head (``cls``, ``cls+avg``, ``avg``, ``cls_cat_avg``).

Parameter names are those of the public VideoMamba encoder (``patch_embed.proj``, ``cls_token``,
``pos_embed``, ``temporal_pos_embedding``, ``layers.{i}.norm``, ``layers.{i}.mixer.*`` with the
``*_b`` backward-scan parameters, ``norm``, ``pool_norm``), so its checkpoints load through
:mod:`mambajepa.io.videomamba`.

Masked encoding (``keep_indices``) works as in the ViT: only the kept tubelets are embedded, each
with its own grid position, behind the CLS token; hidden tokens never enter a scan.

Streaming: a bidirectional scan needs the whole sequence, so only the causal configuration
(``bimamba=False``, forward-only Mamba scans across the ``[CLS, frames ...]`` sequence) carries a
state from one chunk of frames to the next. The first chunk of a stream holds the CLS token;
later chunks hold only patch tokens, so processing a clip chunk by chunk gives exactly the tokens
of processing it whole.

Temporal positions beyond the embedding table (``num_frames // kernel_size`` entries) reuse its
last entry, the same rule for a whole clip and for a stream, so chunking never changes a token.
Spatial grids other than the training grid interpolate ``pos_embed`` bicubically.

Dimension legend:
    B batch, C channels, T frames, H height, W width, k ``kernel_size`` (frames per tubelet),
    gt/gh/gw token grid (T/k, H/p, W/p), S = gh·gw tokens per frame, N = gt·S patch tokens,
    K kept tokens, D width.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, is_dataclass
from functools import partial
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from mambajepa.core.errors import ConfigError
from mambajepa.core.names import did_you_mean
from mambajepa.core.pretrained import PretrainedMixin
from mambajepa.nn.drop_path import DropPath
from mambajepa.nn.patch_embed import PatchEmbed3D
from mambajepa.nn.positions import grid_coords, grid_ids
from mambajepa.registry import register_model
from mambajepa.ssm.bimamba import BiMamba
from mambajepa.ssm.block import Block
from mambajepa.ssm.mamba1 import Mamba1, Mamba1State
from mambajepa.ssm.mixer_model import init_mixer_weights
from mambajepa.ssm.norm import RMSNorm

POOL_TYPES = ("cls", "cls+avg", "avg", "cls_cat_avg")
_NEEDS_CLS = ("cls", "cls+avg", "cls_cat_avg")


@dataclass
class VideoMambaConfig:
    """Architecture of :class:`VideoMamba` (the ``vision_encoder`` fields of the public VideoMamba)."""

    img_size: int = 224  # training frame side; sizes pos_embed (other sides interpolate it)
    patch_size: int = 16  # spatial side p of a tubelet
    depth: int = 24  # number of Mamba blocks
    embed_dim: int = 192  # token width D
    channels: int = 3  # input channels C
    drop_path_rate: float = 0.0  # stochastic depth, linear from 0 over the blocks
    ssm_cfg: dict[str, Any] | None = None  # extra Mamba-1 arguments (d_state, d_conv, expand, impl, ...)
    norm_epsilon: float = 1e-5  # epsilon of the block and final norms
    fused_add_norm: bool = True  # compatibility flag (same math either way)
    rms_norm: bool = True  # RMSNorm (else LayerNorm) in the blocks and the final norm
    residual_in_fp32: bool = True  # keep the residual stream in fp32
    bimamba: bool = True  # bidirectional ("bimamba v2") scans; False: causal and streamable
    pool_type: str = "cls+avg"  # pooling head: cls | cls+avg | avg | cls_cat_avg
    kernel_size: int = 1  # frames per tubelet k
    num_frames: int = 8  # training frames; sizes temporal_pos_embedding (num_frames // k entries)
    use_checkpoint: bool = False  # recompute the first checkpoint_num blocks in backward
    checkpoint_num: int = 0  # how many blocks (from the first) use activation checkpointing
    add_pool_norm: bool = True  # LayerNorm on the pooled vector (parameters ``pool_norm``)
    clip_decoder_embed_dim: int = 192  # CLIP-distillation head input width (head not part of the encoder)
    clip_output_dim: int = 512  # CLIP-distillation head output width (head not part of the encoder)
    clip_return_layer: int = 1  # layers distilled by that head (not used by the encoder)
    clip_student_return_interval: int = 1  # spacing of those layers (not used by the encoder)
    pretrained: str | None = None  # public VideoMamba checkpoint loaded by mambajepa.io.build_videomamba
    ckpt_num_frame: int | None = None  # informational: loading resizes tables from their own length

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Cross-check fields.

        Raises:
            ConfigError: naming the inconsistent field.
        """
        for name in ("img_size", "patch_size", "depth", "embed_dim", "channels", "kernel_size", "num_frames"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}={getattr(self, name)} must be positive")
        if self.img_size % self.patch_size:
            raise ConfigError(f"img_size={self.img_size} is not a multiple of patch_size={self.patch_size}")
        if self.num_frames % self.kernel_size:
            raise ConfigError(
                f"num_frames={self.num_frames} is not a multiple of kernel_size={self.kernel_size}"
            )
        if self.pool_type not in POOL_TYPES:
            raise ConfigError(f"pool_type={self.pool_type!r} is not one of {POOL_TYPES}")
        if not 0.0 <= self.drop_path_rate < 1.0:
            raise ConfigError(f"drop_path_rate={self.drop_path_rate} must be in [0, 1)")
        if not 0 <= self.checkpoint_num <= self.depth:
            raise ConfigError(f"checkpoint_num={self.checkpoint_num} must be in [0, depth={self.depth}]")
        layer = (self.ssm_cfg or {}).get("layer", "Mamba1")
        if layer != "Mamba1":
            raise ConfigError(f"VideoMamba uses Mamba1 mixers; ssm_cfg['layer']={layer!r}")

    @property
    def table_frames(self) -> int:
        """Entries of the temporal position table, ``num_frames // kernel_size``."""
        return self.num_frames // self.kernel_size


@dataclass
class VideoMambaState:
    """Streaming state of a causal :class:`VideoMamba`.

    Attributes:
        layers: one :class:`~mambajepa.ssm.mamba1.Mamba1State` per block
            (conv ``(B, E, d_conv)``, SSM ``(B, E, d_state)``).
        temporal_offset: temporal tokens (frames / k) already consumed; the next chunk's first
            frame gets this temporal position unless told otherwise.
        started: whether the CLS token has been consumed (the next chunk is a continuation).
    """

    layers: list[Mamba1State]
    temporal_offset: int = 0
    started: bool = False

    def detach(self) -> VideoMambaState:
        """The same state cut from the autograd graph (truncated backpropagation through time)."""
        layers = [Mamba1State(s.conv.detach(), s.ssm.detach()) for s in self.layers]
        return VideoMambaState(layers, self.temporal_offset, self.started)


@dataclass
class VideoMambaOutput:
    """Result of :meth:`VideoMamba.encode`.

    Attributes:
        tokens: patch tokens after the final norm, ``(B, N, D)`` or ``(B, K, D)``.
        cls: CLS token after the final norm ``(B, D)``; None on a stream's continuation chunks.
        pooled: the pooling head's output ``(B, D)`` (``(B, 2D)`` for ``cls_cat_avg``), or None.
        state: the streaming state after this chunk, or None.
    """

    tokens: torch.Tensor
    cls: torch.Tensor | None = None
    pooled: torch.Tensor | None = None
    state: VideoMambaState | None = field(default=None, repr=False)


class VideoMamba(PretrainedMixin, nn.Module):
    """VideoMamba encoder with strict masked encoding and (causal configuration) streaming.

    Args:
        config: the architecture.
        device, dtype: factory arguments.
    """

    config_class = VideoMambaConfig

    def __init__(self, config: VideoMambaConfig, device=None, dtype=None):
        super().__init__()
        self.config = config
        factory = {"device": device, "dtype": dtype}
        D = config.embed_dim
        grid = config.img_size // config.patch_size
        self.patch_embed = PatchEmbed3D(config.channels, D, config.patch_size, config.kernel_size, **factory)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, D, **factory))
        self.pos_embed = nn.Parameter(torch.zeros(1, grid * grid + 1, D, **factory))
        self.temporal_pos_embedding = nn.Parameter(torch.zeros(1, config.table_frames, D, **factory))
        for p in (self.cls_token, self.pos_embed, self.temporal_pos_embedding):
            p._no_weight_decay = True

        ssm_kwargs = {k: v for k, v in (config.ssm_cfg or {}).items() if k != "layer"}
        mixer = BiMamba if config.bimamba else Mamba1
        norm_base = RMSNorm if config.rms_norm else nn.LayerNorm
        norm_cls = partial(norm_base, eps=config.norm_epsilon, **factory)
        # block i drops the branch of block i-1 (the prenorm residual adds it at the start of block i)
        rates = [0.0] + [config.drop_path_rate * i / max(config.depth - 1, 1) for i in range(config.depth)]
        self.layers = nn.ModuleList(
            Block(
                D,
                partial(mixer, layer_idx=i, **ssm_kwargs, **factory),
                norm_cls=norm_cls,
                fused_add_norm=config.fused_add_norm,
                residual_in_fp32=config.residual_in_fp32,
                drop_path=rates[i],
            )
            for i in range(config.depth)
        )
        self.drop_path = DropPath(config.drop_path_rate)
        self.norm = norm_cls(D)
        if config.add_pool_norm:
            self.pool_norm = nn.LayerNorm(D, **factory)
        self.reset_parameters()

    # ------------------------------------------------------------------ setup

    @property
    def embed_dim(self) -> int:
        """Token width D."""
        return self.config.embed_dim

    @property
    def pooled_dim(self) -> int:
        """Width of :attr:`VideoMambaOutput.pooled` (``2D`` for ``cls_cat_avg``, else D)."""
        return 2 * self.embed_dim if self.config.pool_type == "cls_cat_avg" else self.embed_dim

    @property
    def streamable(self) -> bool:
        """Whether the blocks scan forward only, so that a state can carry across chunks."""
        return not self.config.bimamba

    def reset_parameters(self) -> None:
        """The VideoMamba initialisation.

        Truncated-normal (std 0.02) linear weights and zero biases, unit LayerNorms, a
        truncated-normal ``pos_embed``, zero CLS and temporal embeddings, then the Mamba rule:
        ``dt_proj`` biases keep their inverse-softplus init and each ``out_proj`` is rescaled by
        ``1 / sqrt(depth)``.
        """
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                if module.bias is not None and not getattr(module.bias, "_no_reinit", False):
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        self.apply(partial(init_mixer_weights, n_layer=self.config.depth))

    def init_state(self, batch_size: int, device=None, dtype=None) -> VideoMambaState:
        """Zero streaming state at the start of a stream.

        Args:
            batch_size: B.
            device, dtype: of the conv states (default: the parameters'); SSM states are fp32.

        Returns:
            A :class:`VideoMambaState` with one zero Mamba state per block.

        Raises:
            ConfigError: the model is bidirectional (``bimamba=True``) and cannot stream.
        """
        self._require_streamable()
        return VideoMambaState(
            [layer.init_state(batch_size, device=device, dtype=dtype) for layer in self.layers]
        )

    def _require_streamable(self) -> None:
        if not self.streamable:
            raise ConfigError(
                "this VideoMamba is bidirectional (bimamba=True): a backward scan needs the whole "
                "clip, so it has no streaming state; build it with bimamba=False to stream"
            )

    # ------------------------------------------------------------------ geometry

    def grid_size(self, shape: torch.Size | tuple[int, ...]) -> tuple[int, int, int]:
        """Token grid ``(gt, gh, gw)`` of an input shape.

        Args:
            shape: ``(B, C, H, W)`` (an image: one frame, repeated to the tubelet depth) or
                ``(B, C, T, H, W)`` (T a multiple of ``kernel_size``, or 1).

        Returns:
            ``(gt, gh, gw)``.

        Raises:
            ShapeError: another rank, or sides that are not whole tubelets.
        """
        return self.patch_embed.input_grid(shape)

    def num_tokens(self, shape: torch.Size | tuple[int, ...]) -> int:
        """Patch tokens N of an input of ``shape`` (the CLS token not counted)."""
        return math.prod(self.grid_size(shape))

    @staticmethod
    def token_coords(ids: torch.Tensor, grid: tuple[int, int, int]) -> torch.Tensor:
        """Grid coordinates ``(..., 3)`` (frame, row, col) of token ids ``(...)`` on ``grid``."""
        return grid_coords(ids, grid)

    def _spatial_table(self, gh: int, gw: int) -> torch.Tensor:
        """Patch rows of ``pos_embed`` for a ``gh × gw`` frame: ``(gh·gw, D)``, interpolated if needed."""
        side = self.config.img_size // self.config.patch_size
        table = self.pos_embed[0, 1:]  # (side·side, D)
        if (gh, gw) == (side, side):
            return table
        grid = table.reshape(1, side, side, -1).permute(0, 3, 1, 2)  # (1, D, side, side)
        grid = F.interpolate(grid.float(), size=(gh, gw), mode="bicubic", align_corners=False)
        return grid.permute(0, 2, 3, 1).reshape(gh * gw, -1).to(table.dtype)  # (gh·gw, D)

    def _positions(
        self, coords: torch.Tensor, grid: tuple[int, int, int], offset: int | None
    ) -> torch.Tensor:
        """Spatial (+ temporal unless ``offset`` is None) embeddings ``(..., D)`` of coords ``(..., 3)``."""
        _, gh, gw = grid
        t, r, c = coords.unbind(-1)
        spatial = self._spatial_table(gh, gw)[r * gw + c]  # (..., D)
        if offset is None:
            return spatial
        # positions past the table reuse its last entry (identical for whole clips and streams)
        t = (t + offset).clamp(max=self.config.table_frames - 1)
        return spatial + self.temporal_pos_embedding[0, t]  # (..., D)

    # ------------------------------------------------------------------ forward

    def _embed(
        self, x: torch.Tensor, keep_indices: torch.Tensor | None, offset: int, with_cls: bool
    ) -> tuple[torch.Tensor, tuple[int, int, int]]:
        """Patch + position embeddings, CLS in front when ``with_cls``: ``(B, [1 +] N|K, D)``."""
        grid = self.grid_size(x.shape)
        clip = self.patch_embed.as_clip(x)  # (B, C, T, H, W)
        B = clip.shape[0]
        tokens = self.patch_embed(clip, keep_indices)  # (B, N|K, D); checks keep_indices
        if keep_indices is not None:
            keep_indices = keep_indices.long()
        ids = grid_ids(grid, device=clip.device) if keep_indices is None else keep_indices  # (N,) | (B, K)
        # an image gets no temporal embedding (the public ``use_image`` mode)
        offset = None if x.ndim == 4 else offset
        tokens = tokens + self._positions(grid_coords(ids, grid), grid, offset).to(tokens.dtype)
        if with_cls:
            cls = (self.cls_token + self.pos_embed[:, :1]).expand(B, -1, -1).to(tokens.dtype)  # (B, 1, D)
            tokens = torch.cat([cls, tokens], dim=1)  # (B, 1 + N|K, D)
        return tokens, grid

    def _run_blocks(
        self, hidden: torch.Tensor, state: VideoMambaState | None
    ) -> tuple[torch.Tensor, list[Mamba1State] | None]:
        residual = None
        new_states = [] if state is not None else None
        for i, layer in enumerate(self.layers):
            recompute = (
                self.config.use_checkpoint and i < self.config.checkpoint_num and torch.is_grad_enabled()
            )
            run = partial(checkpoint, layer, use_reentrant=False) if recompute else layer
            if state is not None:
                hidden, residual, s = run(hidden, residual, state=state.layers[i], return_state=True)
                new_states.append(s)
            else:
                hidden, residual = run(hidden, residual)
        residual = residual + self.drop_path(hidden)
        return self.norm(residual.to(self._norm_dtype())), new_states

    def _norm_dtype(self) -> torch.dtype:
        weight = getattr(self.norm, "weight", None)
        return self.pos_embed.dtype if weight is None else weight.dtype

    def encode(
        self,
        x: torch.Tensor,
        keep_indices: torch.Tensor | None = None,
        ssm_state: VideoMambaState | None = None,
        temporal_pos_offset: int | None = None,
        pool: bool = True,
    ) -> VideoMambaOutput:
        """Encode a clip (or one chunk of a stream) into tokens, the CLS token and a pooled vector.

        Args:
            x: ``(B, C, T, H, W)`` or an image ``(B, C, H, W)`` (an image gets no temporal embedding).
            keep_indices: optional ``(B, K)`` token ids into this input's grid (frame-major, then
                row, then column); only those tokens are embedded and scanned.
            ssm_state: streaming state from :meth:`init_state` or a previous chunk (causal
                configuration only). A fresh state puts the CLS token in front of this chunk; a
                used one continues the sequence with patch tokens only.
            temporal_pos_offset: temporal position (in tubelets, i.e. ``chunk_start //
                kernel_size``) of this input's first frame; None takes it from ``ssm_state``
                (0 without a state).
            pool: compute :attr:`VideoMambaOutput.pooled` with the ``pool_type`` head.

        Returns:
            :class:`VideoMambaOutput` (``state`` set when ``ssm_state`` was given).

        Raises:
            ConfigError: a state on a bidirectional model; a negative offset; pooling that needs
                the CLS token on a continuation chunk.
            ShapeError: malformed input or indices.
        """
        if ssm_state is not None:
            self._require_streamable()
        if temporal_pos_offset is None:
            temporal_pos_offset = 0 if ssm_state is None else ssm_state.temporal_offset
        if temporal_pos_offset < 0:
            raise ConfigError(f"temporal_pos_offset={temporal_pos_offset} must be >= 0")
        with_cls = ssm_state is None or not ssm_state.started
        if pool and not with_cls and self.config.pool_type in _NEEDS_CLS:
            raise ConfigError(
                f"pool_type={self.config.pool_type!r} needs the CLS token, which only the first chunk "
                "of a stream holds; pass pool=False (tokens only) or use pool_type='avg' on "
                "continuation chunks"
            )
        hidden, grid = self._embed(x, keep_indices, temporal_pos_offset, with_cls)
        hidden, layer_states = self._run_blocks(hidden, ssm_state)
        cls, tokens = (hidden[:, 0], hidden[:, 1:]) if with_cls else (None, hidden)
        new_state = None
        if ssm_state is not None:
            new_state = VideoMambaState(layer_states, temporal_pos_offset + grid[0], started=True)
        pooled = self.pool(tokens, cls) if pool else None
        return VideoMambaOutput(tokens, cls, pooled, new_state)

    def pool(self, tokens: torch.Tensor, cls: torch.Tensor | None) -> torch.Tensor:
        """The ``pool_type`` head over normed tokens (then ``pool_norm`` when configured).

        Args:
            tokens: ``(B, N, D)`` patch tokens.
            cls: ``(B, D)`` CLS token, or None (only ``pool_type='avg'`` works then).

        Returns:
            ``(B, D)``, or ``(B, 2D)`` = ``[cls, mean]`` for ``cls_cat_avg``.

        Raises:
            ConfigError: the pool type needs a CLS token and ``cls`` is None.
        """
        kind = self.config.pool_type
        if cls is None and kind in _NEEDS_CLS:
            raise ConfigError(f"pool_type={kind!r} needs the CLS token, got cls=None")
        mean = tokens.mean(dim=1)  # (B, D)
        if kind == "cls":
            pooled = cls
        elif kind == "cls+avg":
            pooled = cls + mean
        elif kind == "avg":
            pooled = mean
        else:
            pooled = torch.stack([cls, mean], dim=1)  # (B, 2, D): both normed separately
        if self.config.add_pool_norm:
            pooled = self.pool_norm(pooled)
        return pooled.flatten(1)  # (B, D) | (B, 2D)

    def forward(
        self,
        x: torch.Tensor,
        keep_indices: torch.Tensor | None = None,
        ssm_state: VideoMambaState | None = None,
        temporal_pos_offset: int | None = None,
    ) -> torch.Tensor | tuple[torch.Tensor, VideoMambaState]:
        """Patch tokens of a clip, like :class:`~mambajepa.encoders.vit.VisionTransformer`.

        Args:
            x: ``(B, C, T, H, W)`` or ``(B, C, H, W)``.
            keep_indices: optional ``(B, K)`` kept token ids (strict masked encoding).
            ssm_state: streaming state (causal configuration); see :meth:`encode`.
            temporal_pos_offset: temporal position of the first frame; see :meth:`encode`.

        Returns:
            ``(B, N|K, D)`` tokens after the final norm (CLS dropped; see :meth:`encode` for it
            and the pooled vector), or ``(tokens, new_state)``
            when ``ssm_state`` is given.

        Raises:
            ConfigError, ShapeError: as :meth:`encode`.
        """
        out = self.encode(x, keep_indices, ssm_state, temporal_pos_offset, pool=False)
        return out.tokens if ssm_state is None else (out.tokens, out.state)


# ---------------------------------------------------------------------- building


def _fields_of(config: Any) -> dict[str, Any]:
    """Field name -> value of a dataclass, a mapping, or an attribute namespace."""
    if is_dataclass(config) and not isinstance(config, type):
        return {f.name: getattr(config, f.name) for f in fields(config)}
    if isinstance(config, dict):
        return dict(config)
    return dict(vars(config))


def videomamba_config(config: Any) -> VideoMambaConfig:
    """A :class:`VideoMambaConfig` from the public VideoMamba configuration layout.

    Args:
        config: a :class:`VideoMambaConfig`; or an object / dict with a ``vision_encoder`` entry,
            or the ``vision_encoder`` fields themselves (namespace, dict or dataclass). The public
            ``bimamba_type`` (``"v2"`` or ``"none"``) is accepted in place of ``bimamba``.

    Returns:
        The config.

    Raises:
        ConfigError: an unknown field (the closest one is named) or inconsistent values.
    """
    if isinstance(config, VideoMambaConfig):
        return config
    data = _fields_of(config)
    if "vision_encoder" in data:
        data = _fields_of(data["vision_encoder"])
    if "bimamba_type" in data:
        kind = data.pop("bimamba_type")
        if kind not in ("v2", "none", None):
            raise ConfigError(f"bimamba_type={kind!r} is not one of ('v2', 'none')")
        data.setdefault("bimamba", kind == "v2")
    known = [f.name for f in fields(VideoMambaConfig)]
    for key in data:
        if key not in known:
            raise ConfigError(f"unknown VideoMamba config field {key!r}{did_you_mean(key, known)}")
    if data.get("ssm_cfg") is not None:
        data["ssm_cfg"] = dict(data["ssm_cfg"])
    return VideoMambaConfig(**data)


# ViT field names accepted by the presets, so recipes can switch backbones without renaming
_VIT_ALIASES = {"tubelet_size": "kernel_size", "in_chans": "channels"}


def _factory(**preset):
    def build(**overrides) -> VideoMamba:
        fields_ = {**preset, **{_VIT_ALIASES.get(k, k): v for k, v in overrides.items()}}
        return VideoMamba(videomamba_config(fields_))

    return build


_PRESETS = {
    # 32 px ShapesWorld clips on a CPU: 8×8 patches per frame (add bimamba=False to stream). No
    # pool_norm: JEPA recipes train on tokens, and DDP wants every parameter to get a gradient.
    "videomamba_tiny_cpu": dict(
        img_size=32,
        patch_size=4,
        depth=4,
        embed_dim=64,
        num_frames=8,
        ssm_cfg={"d_state": 16},
        add_pool_norm=False,
    ),
    "videomamba_tiny": dict(img_size=224, patch_size=16, depth=24, embed_dim=192),
    "videomamba_small": dict(img_size=224, patch_size=16, depth=24, embed_dim=384),
    "videomamba_middle": dict(img_size=224, patch_size=16, depth=32, embed_dim=576),
}
for _name, _preset in _PRESETS.items():
    register_model(_name, config_cls=VideoMambaConfig, aliases=_VIT_ALIASES)(_factory(**_preset))


def videomamba_preset(name: str) -> dict[str, Any]:
    """The architecture fields of preset ``name`` (a copy).

    Raises:
        ConfigError: for an unknown preset.
    """
    if name not in _PRESETS:
        raise ConfigError(f"unknown VideoMamba preset {name!r} (known: {', '.join(_PRESETS)})")
    return dict(_PRESETS[name])
