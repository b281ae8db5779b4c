"""RoPE against independent transcriptions of each pairing, incl. the V-JEPA 2 quirk."""

import pytest
import torch

from mambajepa.nn.rope import RotaryEmbedding


def spec_vjepa2(x, coords, base=10000.0):
    """The V-JEPA 2 rule written from the spec, axis by axis with explicit loops over pairs."""
    Dh, A = x.shape[-1], coords.shape[-1]
    d = 2 * ((Dh // A) // 2)
    out = x.clone()
    for a in range(A):
        pos = coords[..., a].float()  # (B, N)
        omega = 1.0 / base ** (torch.arange(d // 2, dtype=torch.float64) / (d / 2))
        ang = pos[..., None].double() * omega  # (B, N, d/2)
        table = torch.cat([ang, ang], -1)  # halves concatenated
        cos, sin = table.cos().float()[:, None], table.sin().float()[:, None]  # (B, 1, N, d)
        seg = x[..., a * d : (a + 1) * d]
        rot = torch.empty_like(seg)
        rot[..., 0::2] = -seg[..., 1::2]
        rot[..., 1::2] = seg[..., 0::2]
        out[..., a * d : (a + 1) * d] = seg * cos + rot * sin
    return out


def complex_rope(x, coords, base=10000.0):
    """Textbook RoPE: channel pairs as complex numbers multiplied by exp(i p ω_j), per axis."""
    Dh, A = x.shape[-1], coords.shape[-1]
    d = 2 * ((Dh // A) // 2)
    out = x.clone()
    for a in range(A):
        omega = 1.0 / base ** (torch.arange(d // 2, dtype=torch.float64) / (d / 2))
        ang = coords[..., a].double()[..., None] * omega  # (B, N, d/2)
        z = torch.view_as_complex(x[..., a * d : (a + 1) * d].double().unflatten(-1, (-1, 2)).contiguous())
        z = z * torch.polar(torch.ones_like(ang), ang)[:, None]
        out[..., a * d : (a + 1) * d] = torch.view_as_real(z).flatten(-2).float()
    return out


def neox_rope(x, coords, base=10000.0):
    """Half pairing: channel j with j + d/2 inside each axis slice."""
    Dh, A = x.shape[-1], coords.shape[-1]
    d = 2 * ((Dh // A) // 2)
    out = x.clone()
    for a in range(A):
        omega = 1.0 / base ** (torch.arange(d // 2, dtype=torch.float64) / (d / 2))
        ang = (coords[..., a].double()[..., None] * omega)[:, None].float()  # (B, 1, N, d/2)
        u, v = x[..., a * d : a * d + d // 2], x[..., a * d + d // 2 : (a + 1) * d]
        out[..., a * d : a * d + d // 2] = u * ang.cos() - v * ang.sin()
        out[..., a * d + d // 2 : (a + 1) * d] = v * ang.cos() + u * ang.sin()
    return out


REFERENCES = {"vjepa2": spec_vjepa2, "interleaved": complex_rope, "half": neox_rope}


@pytest.mark.parametrize("style", ["vjepa2", "interleaved", "half"])
@pytest.mark.parametrize("head_dim,n_axes", [(64, 3), (24, 3), (16, 2), (8, 1), (10, 3)])
def test_rope_matches_reference(style, head_dim, n_axes):
    g = torch.Generator().manual_seed(head_dim * 7 + n_axes)
    x = torch.randn(2, 3, 11, head_dim, generator=g)
    coords = torch.randint(0, 9, (2, 11, n_axes), generator=g)
    rope = RotaryEmbedding(head_dim, n_axes=n_axes, style=style)
    got = rope(coords).apply(x)
    torch.testing.assert_close(got, REFERENCES[style](x, coords), rtol=1e-5, atol=1e-5)


def test_vjepa2_quirk_differs_from_textbook_rope():
    x = torch.randn(1, 2, 7, 64)
    coords = torch.randint(1, 8, (1, 7, 3))
    quirk = RotaryEmbedding(64, 3, style="vjepa2")(coords).apply(x)
    textbook = RotaryEmbedding(64, 3, style="interleaved")(coords).apply(x)
    assert (quirk - textbook).abs().max() > 1e-2


def test_unrotated_tail_and_shared_positions():
    rope = RotaryEmbedding(64, 3)  # 3 × 20 rotated channels, 4 left alone
    x = torch.randn(2, 4, 5, 64)
    coords = torch.randint(0, 6, (5, 3))
    shared = rope(coords).apply(x)
    assert torch.equal(shared[..., 60:], x[..., 60:])
    per_sample = rope(coords.expand(2, 5, 3)).apply(x)
    torch.testing.assert_close(shared, per_sample)


@pytest.mark.parametrize("style", ["interleaved", "half"])
def test_textbook_styles_are_relative(style):
    """q·k depends only on the coordinate difference (fails for a wrong pairing)."""
    rope = RotaryEmbedding(24, 2, style=style)
    q, k = torch.randn(1, 1, 1, 24), torch.randn(1, 1, 1, 24)
    c1, c2 = torch.tensor([[3, 1]]), torch.tensor([[5, 4]])
    shift = torch.tensor([[7, 2]])

    def dot(a, b):
        return (rope(a).apply(q) * rope(b).apply(k)).sum()

    torch.testing.assert_close(dot(c1, c2), dot(c1 + shift, c2 + shift), rtol=1e-4, atol=1e-5)


def test_bad_arguments():
    with pytest.raises(ValueError, match="style"):
        RotaryEmbedding(64, 3, style="nope")
    with pytest.raises(ValueError, match="even"):
        RotaryEmbedding(63, 3)
    with pytest.raises(ValueError, match="axes"):
        RotaryEmbedding(64, 3)(torch.zeros(4, 2))
