"""``mambajepa eval recon``: metrics and fills against hand-computed values; the evaluation on fakes."""

from __future__ import annotations

import argparse
import json
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from mambajepa import registry
from mambajepa.core.errors import ConfigError, DataError, ShapeError
from mambajepa.eval import recon
from mambajepa.eval.recon import (
    BASELINES,
    PSNR_CAP,
    ReconEvaluation,
    draw_observed,
    draw_recon_pictures,
    evaluate_recon,
    format_recon_table,
    held_out_images,
    idw_fill,
    mean_fill,
    nearest_fill,
    observed_count,
    psnr,
    ssim,
    write_recon_json,
)
from mambajepa.specs import DatasetSpec


def _images(n: int = 3, size: int = 16, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


class FillMethod:
    """A fake method whose reconstruct is a baseline fill, recording what it was given."""

    def __init__(self, fill=nearest_fill):
        self.fill, self.calls = fill, []

    def reconstruct(self, images, observed):
        self.calls.append(observed.clone())
        return self.fill(images, observed)

    def to(self, device):
        return self


class PerfectMethod:
    """A fake method that returns the true images."""

    def reconstruct(self, images, observed):
        return images.clone()


# ----------------------------------------------------------------------------------------------
# metrics


def test_psnr_of_a_constant_error_and_of_identical_images():
    target = _images(2)
    pred = target.clone()
    pred[0] = pred[0] + 0.1  # MSE 0.01 -> 20 dB
    out = psnr(pred, target)
    assert out.shape == (2,)
    assert out[0].item() == pytest.approx(20.0, abs=1e-4)
    assert math.isinf(out[1].item()) and out[1].item() > 0
    assert psnr(pred * 255, target * 255, max_val=255.0)[0].item() == pytest.approx(20.0, abs=1e-3)


def _ssim_reference(x: np.ndarray, y: np.ndarray, max_val: float = 1.0) -> float:
    """SSIM of one (C, H, W) pair by explicit loops over channels and valid 11 x 11 windows."""
    taps = np.exp(-((np.arange(11) - 5.0) ** 2) / (2 * 1.5**2))
    w = np.outer(taps, taps)
    w /= w.sum()
    c1, c2 = (0.01 * max_val) ** 2, (0.03 * max_val) ** 2
    values = []
    for c in range(x.shape[0]):
        for i in range(x.shape[1] - 10):
            for j in range(x.shape[2] - 10):
                a, b = x[c, i : i + 11, j : j + 11], y[c, i : i + 11, j : j + 11]
                mu_a, mu_b = (w * a).sum(), (w * b).sum()
                var_a, var_b = (w * (a - mu_a) ** 2).sum(), (w * (b - mu_b) ** 2).sum()
                cov = (w * (a - mu_a) * (b - mu_b)).sum()
                values.append(
                    (2 * mu_a * mu_b + c1)
                    * (2 * cov + c2)
                    / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
                )
    return float(np.mean(values))


def test_ssim_is_one_for_identical_images_and_matches_a_loop_reference():
    target = _images(2, seed=1)
    assert torch.allclose(ssim(target, target), torch.ones(2), atol=1e-6)
    pred = (target + 0.2 * torch.randn(target.shape, generator=torch.Generator().manual_seed(2))).clamp(0, 1)
    out = ssim(pred, target)
    for b in range(2):
        assert out[b].item() == pytest.approx(_ssim_reference(pred[b].numpy(), target[b].numpy()), abs=1e-5)
    assert out.max() < 0.95


def test_metrics_reject_mismatched_or_small_images():
    with pytest.raises(ShapeError, match=r"\(2, 3, 16, 16\)"):
        psnr(_images(2), _images(3))
    with pytest.raises(ShapeError, match="at least 11 x 11"):
        ssim(_images(1, size=8), _images(1, size=8))
    with pytest.raises(ShapeError, match=r"\(B, 3, H, W\)"):
        psnr(torch.rand(2, 1, 16, 16), torch.rand(2, 1, 16, 16))


# ----------------------------------------------------------------------------------------------
# baselines


def _two_colour_image() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """A 3 x 3 image observed at pixel 0 (colour a) and pixel 8 (colour b)."""
    a, b = torch.tensor([1.0, 0.0, 0.2]), torch.tensor([0.0, 1.0, 0.6])
    image = torch.rand(1, 3, 3, 3, generator=torch.Generator().manual_seed(3))
    image[0, :, 0, 0], image[0, :, 2, 2] = a, b
    return image, torch.tensor([[0, 8]]), a, b


def test_nearest_fill_on_a_tiny_image_with_ties_to_the_lowest_index():
    image, observed, a, b = _two_colour_image()
    # squared distances to (0, 0) and (2, 2); pixels 2, 4 and 6 are equally far from both -> pixel 0
    expected_source = [[a, a, a], [a, a, b], [a, b, b]]
    expected = torch.stack([torch.stack(row) for row in expected_source])  # (3, 3, C)
    assert torch.equal(nearest_fill(image, observed)[0], expected.permute(2, 0, 1))


def test_idw_fill_matches_a_hand_computed_pixel_and_keeps_observed_pixels():
    image, observed, a, b = _two_colour_image()
    out = idw_fill(image, observed)
    # pixel 1 = (row 0, col 1): distance 1 to pixel 0, sqrt(5) to pixel 8 -> weights 1 and 1/5
    assert torch.allclose(out[0, :, 0, 1], (a + b / 5) / 1.2, atol=1e-6)
    # power 1: weights 1 and 1/sqrt(5)
    w = 1 / math.sqrt(5)
    assert torch.allclose(idw_fill(image, observed, power=1.0)[0, :, 0, 1], (a + w * b) / (1 + w), atol=1e-6)
    images = _images(2)
    many = draw_observed(2, 16 * 16, 0.1, seed=4)
    filled = idw_fill(images, many)
    flat_in, flat_out = images.flatten(2), filled.flatten(2)
    for i in range(2):
        assert torch.equal(flat_out[i][:, many[i]], flat_in[i][:, many[i]])
    assert torch.equal(nearest_fill(images, many).flatten(2)[0][:, many[0]], flat_in[0][:, many[0]])


def test_idw_fill_with_one_observed_pixel_is_constant():
    images = _images(1)
    out = idw_fill(images, torch.tensor([[37]]))
    assert torch.allclose(out, images.flatten(2)[:, :, 37][..., None, None].expand_as(images), atol=1e-6)


def test_mean_fill_is_the_mean_observed_colour():
    image, observed, a, b = _two_colour_image()
    out = mean_fill(image, observed)
    assert out.shape == image.shape
    assert torch.allclose(out[0], ((a + b) / 2)[:, None, None].expand(3, 3, 3))


def test_fills_split_large_distance_blocks_the_same_way(monkeypatch):
    images = _images(3)
    observed = draw_observed(3, 16 * 16, 0.2, seed=5)
    whole = {name: fill(images, observed) for name, fill in BASELINES.items()}
    monkeypatch.setattr(recon, "_DISTANCE_BUDGET", 100)  # one image and a few pixels per block
    for name, fill in BASELINES.items():  # IDW's weighted sums round differently in smaller blocks
        assert torch.allclose(fill(images, observed), whole[name], atol=1e-6), name
    assert torch.equal(nearest_fill(images, observed), whole["nearest"])


@pytest.mark.parametrize("fill", list(BASELINES.values()), ids=list(BASELINES))
def test_fills_reject_bad_observed_sets(fill):
    images = _images(2, size=4)
    with pytest.raises(ShapeError, match=r"\[0, 16\].*outside \[0, 15\]"):
        fill(images, torch.tensor([[0, 16], [1, 2]]))
    with pytest.raises(ShapeError, match=r"\[-1, 2\]"):
        fill(images, torch.tensor([[-1, 2], [1, 2]]))
    with pytest.raises(ShapeError, match="empty"):
        fill(images, torch.empty(2, 0, dtype=torch.int64))
    with pytest.raises(ShapeError, match=r"\(2, K\).*\(3, 2\)"):
        fill(images, torch.tensor([[0, 1], [1, 2], [3, 4]]))
    with pytest.raises(ShapeError, match="int64"):
        fill(images, torch.tensor([[0.0, 1.0], [1.0, 2.0]]))
    with pytest.raises(ShapeError, match=r"\(B, 3, H, W\)"):
        fill(images[:, 0], torch.tensor([[0, 1], [1, 2]]))


def test_idw_rejects_a_bad_power():
    with pytest.raises(ConfigError, match="power=0"):
        idw_fill(_images(1, size=4), torch.tensor([[0, 1]]), power=0)


# ----------------------------------------------------------------------------------------------
# observed sets and the evaluation


def test_observed_sets_are_sorted_seeded_and_nested():
    assert (
        observed_count(0.01, 256) == 3 and observed_count(0.001, 256) == 1 and observed_count(1, 256) == 256
    )
    small, large = draw_observed(4, 256, 0.05, seed=7), draw_observed(4, 256, 0.5, seed=7)
    assert small.shape == (4, 13) and large.shape == (4, 128) and small.dtype == torch.int64
    assert torch.equal(small, small.sort(-1).values)
    assert torch.equal(small, draw_observed(4, 256, 0.05, seed=7))
    assert not torch.equal(small, draw_observed(4, 256, 0.05, seed=8))
    for i in range(4):
        assert set(small[i].tolist()) <= set(large[i].tolist())
    g = torch.Generator().manual_seed(7)
    assert torch.equal(small[0], torch.randperm(256, generator=g)[:13].sort().values)
    with pytest.raises(ConfigError, match=r"1\.5"):
        observed_count(1.5, 256)


def test_evaluate_recon_of_a_nearest_fill_method_ties_the_nearest_baseline():
    images = _images(5)
    method = FillMethod(nearest_fill)
    results = evaluate_recon(method, images, [0.05, 0.5], seed=3, batch_size=2, n_shown=3)
    assert results["n_images"] == 5 and list(results["fractions"]) == ["0.05", "0.5"]
    for key, entry in results["fractions"].items():
        assert entry["observed_pixels"] == round(float(key) * 256)
        assert entry["ours"] == entry["nearest"]
        assert entry["beats_best_baseline"] is False
        assert entry["best_baseline"] in BASELINES
        best = max(entry[name]["psnr"] for name in BASELINES)
        assert entry[entry["best_baseline"]]["psnr"] == best
        shown = results["shown"]["fractions"][key]
        assert shown["ours"].shape == (3, 3, 16, 16) and torch.equal(shown["ours"], shown["nearest"])
    # the same observed pixels went to ours as to the baselines: the seeded draw, in batches of 2
    assert [c.shape[0] for c in method.calls] == [2, 2, 1, 2, 2, 1]
    for i, key in enumerate(["0.05", "0.5"]):
        seen = torch.cat(method.calls[3 * i : 3 * i + 3])
        assert torch.equal(seen, draw_observed(5, 256, float(key), seed=3))
        assert torch.equal(results["shown"]["fractions"][key]["observed"], seen[:3])
    # the mean over images of the per-image metrics
    observed = draw_observed(5, 256, 0.05, seed=3)
    assert results["fractions"]["0.05"]["idw"]["psnr"] == pytest.approx(
        float(psnr(idw_fill(images, observed), images).mean()), rel=1e-6
    )
    assert results["fractions"]["0.05"]["mean"]["ssim"] == pytest.approx(
        float(ssim(mean_fill(images, observed), images).mean()), rel=1e-6
    )


def test_evaluate_recon_of_a_perfect_method_is_clipped_and_beats_the_baselines(tmp_path):
    results = evaluate_recon(PerfectMethod(), _images(3), [0.1], n_shown=2)
    entry = results["fractions"]["0.1"]
    assert entry["ours"]["psnr"] == PSNR_CAP and entry["ours"]["ssim"] == pytest.approx(1.0)
    assert entry["beats_best_baseline"] is True
    path = write_recon_json(results, tmp_path / "recon.json")
    written = json.loads(path.read_text())
    assert "shown" not in written and written["fractions"]["0.1"] == entry
    table = format_recon_table(results)
    assert "100.00" in table and f"{PSNR_CAP - entry[entry['best_baseline']]['psnr']:+.2f}" in table


def test_evaluate_recon_rejects_bad_settings():
    images = _images(2)
    for fracs, match in (([0.0], r"fraction 0\.0"), ([1.2], r"1\.2"), ([], "empty"), ([0.1, 0.1], "repeat")):
        with pytest.raises(ConfigError, match=match):
            evaluate_recon(PerfectMethod(), images, fracs)
    with pytest.raises(ConfigError, match="batch_size"):
        evaluate_recon(PerfectMethod(), images, [0.1], batch_size=0)
    with pytest.raises(DataError, match=r"span \[.*, 2\]"):
        evaluate_recon(PerfectMethod(), images * 2, [0.1])

    class Cropping:
        def reconstruct(self, images, observed):
            return images[..., :-1]

    with pytest.raises(ShapeError, match=r"\(2, 3, 16, 15\)"):
        evaluate_recon(Cropping(), images, [0.1])


def test_pictures_are_written(tmp_path):
    results = evaluate_recon(FillMethod(idw_fill), _images(3), [0.05, 0.2], n_shown=2)
    drawn = draw_recon_pictures(results, tmp_path / "pictures")
    names = sorted(p.name for p in drawn)
    assert names == ["psnr_vs_fraction.png", "recon_grid_0.05.png", "recon_grid_0.2.png"]
    for p in drawn:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ----------------------------------------------------------------------------------------------
# registration and ``mambajepa eval recon``


def test_recon_is_registered_for_nf_jepa_only():
    assert registry.get_evaluation("recon") is ReconEvaluation
    assert "recon" in registry.list_evaluations()
    nf_jepa = type("NFJEPALike", (), {"name": "nf_jepa"})
    assert registry.evaluation_applies("recon", nf_jepa)
    assert not registry.evaluation_applies("recon", registry.get_method("jepa"))


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--checkpoint", required=True)
    ReconEvaluation().configure(parser)
    return parser.parse_args(argv)


def test_flags_and_their_defaults():
    args = _parse(["--checkpoint", "run"])
    assert args.obs_fracs == [0.01, 0.05, 0.1, 0.2, 0.5] and args.n_images == 256 and args.seed == 0
    assert _parse(["--checkpoint", "run", "--obs-fracs", "0.1", "0.3"]).obs_fracs == [0.1, 0.3]
    assert _parse(["--checkpoint", "run", "--obs_fracs", "0.2"]).obs_fracs == [0.2]


def test_the_evaluation_reads_the_test_split_and_writes_json_and_pictures(tmp_path, monkeypatch, capsys):
    data = DatasetSpec("shapes_images", {"image_size": 16, "n_train": 1, "n_val": 2, "n_test": 3})
    method = FillMethod(mean_fill)
    run = SimpleNamespace(
        config=SimpleNamespace(data=data), method=method, run_dir=tmp_path, checkpoint=tmp_path
    )
    monkeypatch.setattr(recon, "load_run", lambda path: run)
    args = _parse(
        ["--checkpoint", str(tmp_path), "--obs-fracs", "0.1", "0.5", "--n-images", "8", "--device", "cpu"]
    )
    assert ReconEvaluation().run(args) == 0
    written = json.loads((tmp_path / "recon.json").read_text())
    assert written["n_images"] == 3 and written["split"] == "test"
    assert written["fractions"]["0.5"]["ours"] == written["fractions"]["0.5"]["mean"]
    assert sorted(p.name for p in (tmp_path / "pictures").iterdir()) == [
        "psnr_vs_fraction.png",
        "recon_grid_0.1.png",
        "recon_grid_0.5.png",
    ]
    assert "margin" in capsys.readouterr().out
    images, split = held_out_images(SimpleNamespace(data=data), 8)
    assert split == "test" and images.shape == (3, 3, 16, 16)
    assert torch.equal(images[0], data.build("test")[0]["image"])


def test_held_out_images_fall_back_to_val_and_undo_normalisation():
    raw = DatasetSpec("shapes_images", {"image_size": 16, "n_train": 1, "n_val": 2, "n_test": 0})
    images, split = held_out_images(SimpleNamespace(data=raw), 5)
    assert split == "val" and images.shape == (2, 3, 16, 16)
    normalized = DatasetSpec("shapes_images", {**raw.kwargs, "normalize": True})
    back, _ = held_out_images(SimpleNamespace(data=normalized), 5)
    assert torch.allclose(back, images, atol=1e-5)
    empty = DatasetSpec("shapes_images", {**raw.kwargs, "n_val": 0})
    with pytest.raises(ConfigError, match="neither a test nor a val split"):
        held_out_images(SimpleNamespace(data=empty), 5)
    with pytest.raises(ConfigError, match="no dataset section"):
        held_out_images(SimpleNamespace(), 5)
