"""Peer parity: our Mamba1 / Mamba2 loaded with Hugging Face ``MambaMixer`` / ``Mamba2Mixer`` weights."""

import pytest
import torch

from mambajepa.ssm import Mamba1, Mamba2

transformers = pytest.importorskip("transformers")


def _rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).norm() / b.norm().clamp_min(1e-12)).item()


def _compare(ours, peer, x, peer_call):
    """Outputs and gradients (input and every parameter, matched by name) of ours vs the peer."""
    x1 = x.clone().requires_grad_(True)
    x2 = x.clone().requires_grad_(True)
    y_ours = ours(x1)
    y_peer = peer_call(peer, x2)
    assert _rel_err(y_ours, y_peer) <= 1e-4
    g = torch.randn_like(y_peer)
    (y_ours * g).sum().backward()
    (y_peer * g).sum().backward()
    assert _rel_err(x1.grad, x2.grad) <= 1e-4
    peer_params = dict(peer.named_parameters())
    for name, p in ours.named_parameters():
        assert _rel_err(p.grad, peer_params[name].grad) <= 1e-4, name


@pytest.mark.parametrize("impl", ["chunked", "ref"])
def test_mamba1_matches_hf_mamba_mixer(impl):
    from transformers import MambaConfig
    from transformers.models.mamba.modeling_mamba import MambaMixer

    torch.manual_seed(0)
    cfg = MambaConfig(
        hidden_size=32, state_size=8, expand=2, conv_kernel=4, time_step_rank=4, use_mambapy=False
    )
    peer = MambaMixer(cfg, layer_idx=0).eval()
    ours = Mamba1(32, d_state=8, d_conv=4, expand=2, dt_rank=4, impl=impl, chunk_size=8)
    with torch.no_grad():  # perturb so that D, conv bias etc. are not at trivial values
        for p in peer.parameters():
            p.add_(0.1 * torch.randn_like(p))
    ours.load_state_dict(peer.state_dict(), strict=True)
    x = torch.randn(2, 37, 32)
    _compare(ours, peer, x, lambda m, t: m(t))


@pytest.mark.parametrize("ngroups", [1, 2])
def test_mamba2_matches_hf_mamba2_mixer(ngroups):
    from transformers import Mamba2Config
    from transformers.models.mamba2.modeling_mamba2 import Mamba2Mixer

    torch.manual_seed(0)
    cfg = Mamba2Config(
        hidden_size=32,
        state_size=8,
        expand=2,
        head_dim=16,
        num_heads=4,
        n_groups=ngroups,
        conv_kernel=4,
        chunk_size=16,
        layer_norm_epsilon=1e-5,
    )
    peer = Mamba2Mixer(cfg, layer_idx=0).eval()
    ours = Mamba2(
        32, d_state=8, d_conv=4, expand=2, headdim=16, ngroups=ngroups, chunk_size=8, impl="chunked"
    )
    with torch.no_grad():
        for p in peer.parameters():
            p.add_(0.1 * torch.randn_like(p))
    ours.load_state_dict(peer.state_dict(), strict=True)
    x = torch.randn(2, 37, 32)
    _compare(ours, peer, x, lambda m, t: m(t))
