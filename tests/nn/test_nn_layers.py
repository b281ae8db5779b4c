"""Tubelet embedding (gather path vs convolution), drop path, grid coordinates, sin-cos embedding."""

import math

import pytest
import torch

from mambajepa.core.errors import ShapeError
from mambajepa.nn import DropPath, Mlp, PatchEmbed3D, grid_coords, grid_ids, sincos_embedding


@pytest.mark.parametrize("tubelet", [1, 2])
def test_gathered_embedding_equals_conv_then_gather(tubelet):
    torch.manual_seed(0)
    embed = PatchEmbed3D(3, 16, patch_size=4, tubelet_size=tubelet)
    x = torch.randn(2, 3, 4, 8, 12)
    n = math.prod(embed.grid(4, 8, 12))
    keep = torch.stack([torch.randperm(n)[:7] for _ in range(2)])

    def run(fn):
        embed.zero_grad()
        out = fn()
        out.square().sum().backward()
        return out.detach(), embed.proj.weight.grad.clone(), embed.proj.bias.grad.clone()

    full = run(lambda: embed(x).gather(1, keep[..., None].expand(-1, -1, 16)))
    fast = run(lambda: embed(x, keep))
    for a, b in zip(full, fast):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_patch_embed_token_order_and_errors():
    embed = PatchEmbed3D(1, 4, patch_size=2, tubelet_size=2)
    x = torch.zeros(1, 1, 4, 4, 6)
    x[0, 0, 2:4, 2:4, 4:6] = 1.0  # tubelet at frame 1, row 1, col 2 -> id (1*2+1)*3+2 = 11
    patches = embed.patchify(x)
    assert patches.shape == (1, 12, 8)
    assert torch.nonzero(patches.sum(-1)[0]).flatten().tolist() == [11]
    with pytest.raises(ShapeError, match="tubelets"):
        embed(torch.zeros(1, 1, 3, 4, 6))
    with pytest.raises(ShapeError, match="clip"):
        embed(torch.zeros(1, 2, 4, 4, 6))


def test_image_is_one_tubelet_of_repeated_frames_and_bad_keep_indices_raise():
    torch.manual_seed(0)
    embed = PatchEmbed3D(3, 8, patch_size=4, tubelet_size=2)
    image = torch.randn(2, 3, 8, 12)
    assert embed.input_grid(image.shape) == embed.input_grid((2, 3, 1, 8, 12)) == (1, 2, 3)
    assert embed.input_grid((2, 3, 6, 8, 12)) == (3, 2, 3)
    repeated = image.unsqueeze(2).repeat(1, 1, 2, 1, 1)  # (B, C, 2, H, W)
    torch.testing.assert_close(embed(embed.as_clip(image)), embed(repeated))
    torch.testing.assert_close(embed(embed.as_clip(image.unsqueeze(2))), embed(repeated))
    with pytest.raises(ShapeError, match="got shape"):
        embed.input_grid((3, 8, 12))
    with pytest.raises(ShapeError, match=r"integer \(B=2, K\), got torch.float32"):
        embed(repeated, torch.zeros(2, 3))
    with pytest.raises(ShapeError, match=r"integer \(B=2, K\).*shape \(1, 3\)"):
        embed(repeated, torch.zeros(1, 3, dtype=torch.long))
    with pytest.raises(ShapeError, match=r"\[0, 6\), got range \[0, 6\]"):
        embed(repeated, torch.tensor([[0, 6], [1, 2]]))
    kept = embed(repeated, torch.tensor([[5, 0], [1, 2]], dtype=torch.int32))  # int32 ids are accepted
    torch.testing.assert_close(kept, embed(repeated)[[[0], [1]], [[5, 0], [1, 2]]])


def test_grid_coords_inverts_row_major_ids():
    grid = (3, 4, 5)
    ids = grid_ids(grid)
    coords = grid_coords(ids, grid)
    t, r, c = coords.unbind(-1)
    assert torch.equal((t * 4 + r) * 5 + c, ids)
    assert coords.max(0).values.tolist() == [2, 3, 4]


def test_sincos_embedding_values():
    coords = torch.tensor([[0, 0], [1, 2]])
    emb = sincos_embedding(coords, 10)  # 2 axes × 4 channels + 2 zero channels
    assert emb.shape == (2, 10)
    torch.testing.assert_close(emb[0, :8], torch.tensor([0.0, 0, 1, 1, 0, 0, 1, 1]))
    omega = torch.tensor([1.0, 0.01])
    expected = torch.cat([(1 * omega).sin(), (1 * omega).cos(), (2 * omega).sin(), (2 * omega).cos()])
    torch.testing.assert_close(emb[1, :8], expected)
    assert torch.equal(emb[:, 8:], torch.zeros(2, 2))


def test_drop_path_drops_whole_samples():
    torch.manual_seed(0)
    layer = DropPath(0.25)
    x = torch.ones(4000, 3, 2)
    out = layer(x)
    per_sample = out.flatten(1)
    torch.testing.assert_close(per_sample.unique(), torch.tensor([0.0, 1 / 0.75]))
    assert torch.all(per_sample.min(1).values == per_sample.max(1).values)
    assert abs((per_sample[:, 0] == 0).float().mean().item() - 0.25) < 0.03
    layer.eval()
    assert torch.equal(layer(x), x)
    with pytest.raises(ValueError):
        DropPath(1.0)


def test_mlp_activation_choice():
    mlp = Mlp(4, 8, act="silu")
    x = torch.randn(2, 4)
    torch.testing.assert_close(mlp(x), mlp.fc2(torch.nn.functional.silu(mlp.fc1(x))))
    with pytest.raises(ValueError, match="activation"):
        Mlp(4, 8, act="relu6")
