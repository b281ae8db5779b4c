"""Statistics of every masking strategy over many seeds, checked against the strategy's definition."""

import pytest
import torch

from mambajepa.core.errors import ConfigError
from mambajepa.masks import (
    BlockGrid,
    MaskError,
    MultiBlock2D,
    MultiBlock3D,
    RandomTokens,
    RandomTube,
    Span,
    vjepa_mask_generators,
)


def gen(seed):
    return torch.Generator().manual_seed(seed)


def rectangle_of(indices, width):
    """(top, left, h, w) when ``indices`` fill a rectangle of a ``width``-wide grid exactly, else None."""
    rows, cols = indices // width, indices % width
    top, left = int(rows.min()), int(cols.min())
    h, w = int(rows.max()) - top + 1, int(cols.max()) - left + 1
    full = {(r, c) for r in range(top, top + h) for c in range(left, left + w)}
    got = set(zip(rows.tolist(), cols.tolist()))
    return (top, left, h, w) if got == full and len(indices) == h * w else None


def disjoint_and_complete(spec, complete):
    ctx, tgt = set(spec.context_indices.tolist()), set(spec.target_indices.tolist())
    assert not ctx & tgt
    if complete:
        assert ctx | tgt == set(range(spec.total_tokens))


STRATEGIES = {
    "multiblock2d": lambda: MultiBlock2D((14, 14)),
    "multiblock3d": lambda: MultiBlock3D((4, 8, 8)),
    "tube": lambda: RandomTube((4, 8, 8), 0.75),
    "block": lambda: BlockGrid((8, 8), (2, 2), 0.25),
    "random": lambda: RandomTokens(64),
    "span": lambda: Span(200, 16, 0.3),
}


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_determinism_by_seed(name):
    strategy = STRATEGIES[name]()
    a = strategy.sample_batch(3, gen(7))
    b = strategy.sample_batch(3, gen(7))
    c = strategy.sample_batch(3, gen(8))
    for x, y in zip(a, b):
        assert torch.equal(x.context_indices, y.context_indices)
        assert torch.equal(x.target_indices, y.target_indices)
    assert any(not torch.equal(x.target_indices, z.target_indices) for x, z in zip(a, c))
    for spec in a:
        spec.validate()


class TestMultiBlock2D:
    def test_block_scale_aspect_and_disjointness(self):
        grid = 32
        strategy = MultiBlock2D((grid, grid), min_keep=10)
        scales, aspects = [], []
        for seed in range(150):
            for spec in strategy.sample_batch(2, gen(seed)):
                spec.validate()
                disjoint_and_complete(spec, complete=False)
                assert len(spec.target_blocks) == 4
                union = torch.unique(torch.cat(spec.target_blocks))
                assert torch.equal(union, spec.target_indices)
                for block in spec.target_blocks:
                    rect = rectangle_of(block, grid)
                    assert rect is not None, "each target block is a full rectangle"
                    _, _, h, w = rect
                    scales.append(h * w / grid**2)
                    aspects.append(h / w)
                assert spec.context_indices.numel() >= 10
        # rounding h, w to whole patches moves them by at most 0.5 patch (< 5 % at this size)
        assert 0.135 <= min(scales) and max(scales) <= 0.222
        assert 0.68 <= min(aspects) and max(aspects) <= 1.65
        mean_scale = sum(scales) / len(scales)
        assert mean_scale == pytest.approx(0.175, abs=0.01)
        assert min(scales) < 0.16 and max(scales) > 0.19, "the whole scale range is drawn"
        assert min(aspects) < 0.85 and max(aspects) > 1.3, "the whole aspect range is drawn"

    def test_block_size_is_shared_within_a_batch(self):
        specs = MultiBlock2D((14, 14)).sample_batch(6, gen(3))
        sizes = {tuple(b.numel() for b in s.target_blocks) for s in specs}
        assert len(sizes) == 1

    def test_context_lies_in_one_large_block(self):
        grid = 16
        for seed in range(40):
            spec = MultiBlock2D((grid, grid)).sample(gen(seed))
            ctx = spec.context_indices
            rows, cols = ctx // grid, ctx % grid
            box = (int(rows.max()) - int(rows.min()) + 1) * (int(cols.max()) - int(cols.min()) + 1)
            assert box <= grid * grid
            # the context block before removing targets covers >= 85 % (minus rounding)
            assert ctx.numel() + spec.target_indices.numel() >= 0.8 * grid * grid

    def test_min_keep_is_honoured_and_impossible_settings_raise(self):
        strategy = MultiBlock2D((14, 14), min_keep=70)
        for seed in range(60):
            for spec in strategy.sample_batch(2, gen(seed)):
                assert spec.context_indices.numel() >= 70
        impossible = MultiBlock2D((6, 6), num_targets=8, target_scale=(0.5, 0.5), min_keep=30, max_tries=5)
        with pytest.raises(MaskError, match="min_keep=30"):
            impossible.sample(gen(0))
        with pytest.raises(ConfigError, match="min_keep"):
            MultiBlock2D((4, 4), min_keep=16)
        with pytest.raises(ConfigError, match="target_scale"):
            MultiBlock2D((8, 8), target_scale=(0.3, 0.2))


def expected_union_ratio(t_hw, grid, num_blocks):
    """Mean over cells of 1 - (1 - p)^n, p = chance that one uniformly placed h x w block covers the cell."""
    h, w = t_hw
    _, height, width = grid
    tops, lefts = height - h + 1, width - w + 1
    total = 0.0
    for i in range(height):
        cover_r = sum(1 for top in range(tops) if top <= i < top + h)
        for j in range(width):
            cover_c = sum(1 for left in range(lefts) if left <= j < left + w)
            p = cover_r * cover_c / (tops * lefts)
            total += 1.0 - (1.0 - p) ** num_blocks
    return total / (height * width)


class TestMultiBlock3D:
    def test_tubes_span_time_and_ratio_matches_formula(self):
        grid = (4, 10, 10)
        strategy = MultiBlock3D(grid, num_blocks=3, spatial_scale=(0.16, 0.16), aspect=(1.0, 1.0))
        ratios = []
        for seed in range(400):
            spec = strategy.sample(gen(seed))
            spec.validate()
            disjoint_and_complete(spec, complete=True)
            hidden = torch.zeros(400, dtype=torch.bool)
            hidden[spec.target_indices] = True
            hidden = hidden.reshape(grid)  # (T, H, W)
            assert (hidden == hidden[0]).all(), "every block is a tube through all frames"
            ratios.append(spec.mask_ratio)
        expected = expected_union_ratio((4, 4), grid, 3)
        assert sum(ratios) / len(ratios) == pytest.approx(expected, abs=0.015)

    def test_temporal_extent(self):
        grid = (8, 6, 6)
        strategy = MultiBlock3D(
            grid, num_blocks=1, spatial_scale=(0.25, 0.25), temporal_scale=(0.5, 0.5), aspect=(1.0, 1.0)
        )
        for seed in range(30):
            spec = strategy.sample(gen(seed))
            hidden = torch.zeros(8 * 36, dtype=torch.bool)
            hidden[spec.target_indices] = True
            frames = hidden.reshape(grid).any(dim=(1, 2)).nonzero().squeeze(1)
            assert frames.numel() == 4 and int(frames[-1] - frames[0]) == 3, "4 consecutive frames"
            assert spec.target_indices.numel() == 4 * 9

    def test_vjepa_generators_mask_most_of_the_clip(self):
        short, long = vjepa_mask_generators((8, 14, 14))
        s_ratios, l_ratios, union = [], [], []
        for seed in range(60):
            g = gen(seed)
            s, lg = short.sample(g), long.sample(g)
            s_ratios.append(s.mask_ratio)
            l_ratios.append(lg.mask_ratio)
            hidden = torch.zeros(s.total_tokens, dtype=torch.bool)
            hidden[s.target_indices] = True
            hidden[lg.target_indices] = True
            union.append(hidden.float().mean().item())
        mean = lambda v: sum(v) / len(v)  # noqa: E731
        assert 0.55 < mean(s_ratios) < 0.72
        assert 0.75 < mean(l_ratios) < 0.9
        assert mean(union) > 0.85, "together the two generators hide close to 90 % of the clip"

    def test_min_keep(self):
        strategy = MultiBlock3D((2, 6, 6), num_blocks=4, spatial_scale=(0.3, 0.3), min_keep=30)
        for seed in range(40):
            assert strategy.sample(gen(seed)).context_indices.numel() >= 30
        impossible = MultiBlock3D((2, 6, 6), num_blocks=4, spatial_scale=(0.9, 0.9), min_keep=70, max_tries=3)
        with pytest.raises(MaskError, match="min_keep=70"):
            impossible.sample(gen(0))


def test_random_tube_exact_ratio_and_tubes():
    grid = (3, 5, 6)
    strategy = RandomTube(grid, ratio=0.4)
    counts = torch.zeros(30)
    for seed in range(200):
        spec = strategy.sample(gen(seed))
        disjoint_and_complete(spec, complete=True)
        hidden = torch.zeros(90, dtype=torch.bool)
        hidden[spec.target_indices] = True
        hidden = hidden.reshape(grid)
        assert (hidden == hidden[0]).all()
        assert int(hidden[0].sum()) == 12  # round(0.4 * 30)
        counts += hidden[0].reshape(-1).float()
    freq = counts / 200
    assert (freq - 0.4).abs().max() < 0.15, "every position is hidden about 40 % of the time"
    with pytest.raises(ConfigError, match="ratio"):
        RandomTube(grid, ratio=1.0)


def test_block_grid_hides_whole_aligned_blocks():
    strategy = BlockGrid((7, 8), block_size=(2, 4), ratio=0.4)  # 4 x 2 blocks, last row 1 patch tall
    assert strategy.num_hidden == 3
    seen = set()
    for seed in range(100):
        spec = strategy.sample(gen(seed))
        disjoint_and_complete(spec, complete=True)
        hidden = torch.zeros(56, dtype=torch.bool)
        hidden[spec.target_indices] = True
        hidden = hidden.reshape(7, 8)
        blocks = []
        for r in range(4):
            for c in range(2):
                patch = hidden[2 * r : 2 * r + 2, 4 * c : 4 * c + 4]
                assert patch.all() or not patch.any(), "blocks are hidden whole"
                if patch.any():
                    blocks.append((r, c))
        assert len(blocks) == 3
        seen.update(blocks)
    assert len(seen) == 8, "every block gets hidden for some seed"


def test_block_grid_default_is_fifteen_percent():
    spec = BlockGrid((20, 20), (2, 2)).sample(gen(0))  # 100 blocks
    assert spec.mask_ratio == pytest.approx(0.15)


def test_random_tokens_count_and_uniformity():
    strategy = RandomTokens(40)
    counts = torch.zeros(40)
    for seed in range(300):
        spec = strategy.sample(gen(seed))
        disjoint_and_complete(spec, complete=True)
        assert spec.target_indices.numel() == 6  # int(0.15 * 40)
        counts[spec.target_indices] += 1
    freq = counts / 300
    assert (freq - 0.15).abs().max() < 0.1


def test_span_lengths_and_reach():
    strategy = Span(256)  # defaults: spans of 32, 15 % -> one span
    assert strategy.num_spans == 1
    strategy = Span(300, span_length=32, ratio=0.35)  # int(0.35 * 300 / 32) = 3 spans
    first = last = False
    for seed in range(400):
        spec = strategy.sample(gen(seed))
        disjoint_and_complete(spec, complete=True)
        tgt = spec.target_indices
        assert tgt.numel() == 96
        # maximal runs of consecutive indices are whole numbers of spans
        breaks = (tgt[1:] - tgt[:-1] != 1).nonzero().squeeze(1)
        edges = [0, *(breaks + 1).tolist(), tgt.numel()]
        assert all((b - a) % 32 == 0 for a, b in zip(edges[:-1], edges[1:]))
        first |= int(tgt[0]) == 0
        last |= int(tgt[-1]) == 299
    assert first and last, "spans can start at 0 and end at the last token"
    with pytest.raises(ConfigError, match="span_length=32"):
        Span(32)
