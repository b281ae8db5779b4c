"""``mambajepa eval recon``: how well an NF-JEPA run fills an image in from a few of its pixels.

For each observed fraction, every held-out image shows the same ``k = max(1, round(frac·H·W))``
random pixels (:func:`draw_observed`) to the method's ``reconstruct`` and to three baselines that
fill the other pixels from the observed ones of the same image (:func:`nearest_fill`,
:func:`idw_fill`, :func:`mean_fill`). Each reconstruction is scored against the whole image with
PSNR and SSIM (Wang et al. 2004). ``recon.json``::

    {"fractions": {"0.05": {"observed_pixels": k,
                            "ours": {"psnr", "ssim"}, "nearest": {...}, "idw": {...}, "mean": {...},
                            "best_baseline": name, "beats_best_baseline": bool}, ...},
     "n_images": N, "image_size": [H, W], "seed": s, "psnr_cap_db": 100.0, ...}

and the pictures ``pictures/psnr_vs_fraction.png`` and ``pictures/recon_grid_<frac>.png``.

Dimensions: ``B`` images, ``C`` channels (3), ``H x W`` pixels, ``N = H·W`` pixels of an image in
raster order (index ``row·W + col``), ``K`` observed pixels of an image.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from mambajepa.core.errors import ConfigError, DataError, ShapeError
from mambajepa.core.files import atomic_write_json
from mambajepa.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from mambajepa.eval.base import Evaluation
from mambajepa.eval.runs import load_run
from mambajepa.masks import split_sample
from mambajepa.registry import register_evaluation
from mambajepa.specs import DatasetSpec

__all__ = [
    "BASELINES",
    "DEFAULT_FRACTIONS",
    "PSNR_CAP",
    "ReconEvaluation",
    "draw_observed",
    "draw_psnr_curve",
    "draw_recon_grid",
    "draw_recon_pictures",
    "evaluate_recon",
    "format_recon_table",
    "held_out_images",
    "idw_fill",
    "mean_fill",
    "nearest_fill",
    "observed_count",
    "psnr",
    "ssim",
    "write_recon_json",
]

#: observed fractions of ``mambajepa eval recon`` by default
DEFAULT_FRACTIONS = (0.01, 0.05, 0.1, 0.2, 0.5)
#: PSNR (dB) that a perfect reconstruction (infinite PSNR) counts as in the mean over images
PSNR_CAP = 100.0
#: SSIM constants of Wang et al. 2004
SSIM_WINDOW, SSIM_SIGMA, SSIM_K1, SSIM_K2 = 11, 1.5, 0.01, 0.03
#: most elements of one (images, pixels, observed) distance block the fills hold at once (128 MiB)
_DISTANCE_BUDGET = 2**25


# ----------------------------------------------------------------------------------------------
# input checks


def _check_images(images: torch.Tensor, name: str = "images") -> None:
    if not isinstance(images, torch.Tensor) or images.dim() != 4 or images.shape[1] != 3:
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ShapeError(f"{name}: expected (B, 3, H, W), got {shape}")
    if not images.is_floating_point():
        raise ShapeError(f"{name}: expected a floating-point tensor, got {images.dtype}")


def _check_pair(pred: torch.Tensor, target: torch.Tensor) -> None:
    _check_images(target, "target")
    if not isinstance(pred, torch.Tensor) or pred.shape != target.shape:
        shape = tuple(pred.shape) if isinstance(pred, torch.Tensor) else type(pred).__name__
        raise ShapeError(f"pred has shape {shape}, target {tuple(target.shape)}; they must match")


def _check_observed(images: torch.Tensor, observed: torch.Tensor) -> None:
    _check_images(images)
    B, _, H, W = images.shape
    if not isinstance(observed, torch.Tensor) or observed.dim() != 2 or observed.shape[0] != B:
        shape = tuple(observed.shape) if isinstance(observed, torch.Tensor) else type(observed).__name__
        raise ShapeError(f"observed: expected (B, K) = ({B}, K) raster indices, got {shape}")
    if observed.dtype != torch.int64:
        raise ShapeError(f"observed: expected int64 raster indices, got {observed.dtype}")
    if observed.shape[1] == 0:
        raise ShapeError("observed: the observed set is empty (K = 0); need at least one pixel per image")
    low, high = int(observed.min()), int(observed.max())
    if low < 0 or high >= H * W:
        raise ShapeError(
            f"observed: indices span [{low}, {high}], outside [0, {H * W - 1}] of {H} x {W} images"
        )


# ----------------------------------------------------------------------------------------------
# metrics


def psnr(pred: torch.Tensor, target: torch.Tensor, max_val: float = 1.0) -> torch.Tensor:
    """Peak signal-to-noise ratio of each image, ``10·log10(max_val² / MSE)``.

    Args:
        pred: ``(B, C, H, W)`` reconstructions.
        target: ``(B, C, H, W)`` true images.
        max_val: the largest pixel value (1 for images in [0, 1]).

    Returns:
        ``(B,)`` PSNR in dB from the MSE over all pixels and channels of each image; ``inf`` where
        ``pred`` equals ``target``.

    Raises:
        ShapeError: ``pred`` and ``target`` differ in shape, or are not ``(B, 3, H, W)`` floats.
    """
    _check_pair(pred, target)
    mse = (pred.double() - target.double()).pow(2).flatten(1).mean(1)  # (B,)
    return (10.0 * torch.log10(max_val**2 / mse)).to(target.dtype)


def _gaussian_band(side: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """``(side - 10, side)``: row ``i`` holds the 11 normalised Gaussian taps at columns ``i..i+10``.

    ``band_h @ t @ band_w.T`` is the valid correlation of ``t`` with the separable 11 x 11 window.
    """
    taps = torch.arange(SSIM_WINDOW, dtype=dtype, device=device) - (SSIM_WINDOW - 1) / 2
    g = torch.exp(-(taps**2) / (2 * SSIM_SIGMA**2))
    g = g / g.sum()  # (11,)
    positions = side - SSIM_WINDOW + 1
    columns = torch.arange(positions, device=device)[:, None] + torch.arange(SSIM_WINDOW, device=device)
    band = torch.zeros(positions, side, dtype=dtype, device=device)
    return band.scatter_(1, columns, g.expand(positions, -1))


def ssim(pred: torch.Tensor, target: torch.Tensor, max_val: float = 1.0) -> torch.Tensor:
    """Structural similarity of each image (Wang, Bovik, Sheikh & Simoncelli 2004).

    Local means, variances and the covariance are Gaussian-weighted (11 x 11 window, sigma 1.5)
    per channel; the SSIM map uses ``C1 = (0.01·max_val)²`` and ``C2 = (0.03·max_val)²``. The window
    slides over *valid* positions only (no padding): an ``H x W`` image gives
    ``(H - 10) x (W - 10)`` positions, and the map is averaged over them and over the channels.

    Args:
        pred: ``(B, C, H, W)`` reconstructions, ``H, W >= 11``.
        target: ``(B, C, H, W)`` true images.
        max_val: the dynamic range of the pixels (1 for images in [0, 1]).

    Returns:
        ``(B,)`` mean SSIM of each image (1 where ``pred`` equals ``target``).

    Raises:
        ShapeError: shapes that differ, are not ``(B, 3, H, W)`` floats, or sides smaller than 11.
    """
    _check_pair(pred, target)
    B, C, H, W = target.shape
    if H < SSIM_WINDOW or W < SSIM_WINDOW:
        raise ShapeError(f"ssim needs images of at least {SSIM_WINDOW} x {SSIM_WINDOW} pixels, got {H} x {W}")
    x, y = pred.double(), target.double()
    # the window is separable: two banded matmuls (much faster on a CPU than a grouped conv2d)
    band_h, band_w = _gaussian_band(H, x.dtype, x.device), _gaussian_band(W, x.dtype, x.device)

    def blur(t: torch.Tensor) -> torch.Tensor:
        return band_h @ t @ band_w.T  # (B, C, H - 10, W - 10), valid positions

    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x**2
    var_y = blur(y * y) - mu_y**2
    cov = blur(x * y) - mu_x * mu_y
    c1, c2 = (SSIM_K1 * max_val) ** 2, (SSIM_K2 * max_val) ** 2
    num = (2 * mu_x * mu_y + c1) * (2 * cov + c2)
    den = (mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2)
    return (num / den).mean((1, 2, 3)).to(target.dtype)


# ----------------------------------------------------------------------------------------------
# baselines


def _pixel_coords(height: int, width: int, device: torch.device) -> torch.Tensor:
    """``(N, 2)`` (row, column) of every pixel in raster order, in pixel units."""
    rows, cols = torch.meshgrid(
        torch.arange(height, device=device), torch.arange(width, device=device), indexing="ij"
    )
    return torch.stack([rows.flatten(), cols.flatten()], dim=-1).float()


def _fill_by_distance(
    images: torch.Tensor,
    observed: torch.Tensor,
    combine: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
) -> torch.Tensor:
    """Fill every pixel with ``combine(distances (b, n, K), observed colours (b, K, C)) -> (b, n, C)``.

    The distance blocks are split over images, and over pixels when one image's block alone exceeds
    the budget; observed pixels get their own colour back exactly.
    """
    _check_observed(images, observed)
    B, C, H, W = images.shape
    N, K = H * W, observed.shape[1]
    flat = images.flatten(2).transpose(1, 2)  # (B, N, C)
    index = observed[..., None].expand(-1, -1, C)  # (B, K, C)
    colours = flat.gather(1, index)  # (B, K, C)
    grid = _pixel_coords(H, W, images.device)  # (N, 2)
    out = torch.empty_like(flat)  # (B, N, C)
    per_chunk = max(1, _DISTANCE_BUDGET // (N * K))
    pixels = N if per_chunk > 1 else max(1, _DISTANCE_BUDGET // K)
    for s in range(0, B, per_chunk):
        obs = grid[observed[s : s + per_chunk]]  # (b, K, 2)
        for p in range(0, N, pixels):
            query = grid[p : p + pixels].expand(obs.shape[0], -1, -1)  # (b, n, 2)
            # the direct formula: equal distances stay equal (ties) and an observed pixel is at 0 exactly
            d = torch.cdist(query, obs, compute_mode="donot_use_mm_for_euclid_dist")  # (b, n, K)
            out[s : s + per_chunk, p : p + pixels] = combine(d, colours[s : s + per_chunk])
    out.scatter_(1, index, colours)
    return out.transpose(1, 2).reshape(B, C, H, W)


def nearest_fill(images: torch.Tensor, observed: torch.Tensor) -> torch.Tensor:
    """Each pixel takes the colour of the observed pixel nearest to it (Euclidean, in pixel units).

    Args:
        images: ``(B, 3, H, W)`` images (only the observed pixels are read).
        observed: ``(B, K)`` int64 raster indices of each image's observed pixels, ``K >= 1``.

    Returns:
        ``(B, 3, H, W)``. A pixel equally far from several observed pixels takes the one listed
        first in ``observed`` (the lowest raster index when the rows are sorted).

    Raises:
        ShapeError: wrong shapes or dtypes, an empty observed set, or indices outside the image.
    """

    def nearest(d: torch.Tensor, colours: torch.Tensor) -> torch.Tensor:
        first = d.argmin(-1)  # (b, n); argmin returns the first of equal minima
        return colours.gather(1, first[..., None].expand(-1, -1, colours.shape[-1]))

    return _fill_by_distance(images, observed, nearest)


def idw_fill(images: torch.Tensor, observed: torch.Tensor, power: float = 2.0) -> torch.Tensor:
    """Inverse-distance weighted mean of all observed colours (Shepard interpolation).

    Pixel ``p`` gets ``sum_j w_j c_j / sum_j w_j`` with ``w_j = d(p, o_j)^-power`` over every
    observed pixel ``o_j`` of its image (distances in pixel units); an observed pixel keeps its own
    value exactly.

    Args:
        images: ``(B, 3, H, W)`` images (only the observed pixels are read).
        observed: ``(B, K)`` int64 raster indices of each image's observed pixels, ``K >= 1``.
        power: the exponent of the inverse distance, ``> 0``.

    Returns:
        ``(B, 3, H, W)``.

    Raises:
        ConfigError: ``power`` not a finite positive number.
        ShapeError: wrong shapes or dtypes, an empty observed set, or indices outside the image.
    """
    if not (math.isfinite(power) and power > 0):
        raise ConfigError(f"idw_fill: power={power!r} must be a finite number > 0")

    def weighted(d: torch.Tensor, colours: torch.Tensor) -> torch.Tensor:
        # at distance 0 (the observed pixel itself) the weight is infinite: that pixel is written back after
        w = torch.where(d > 0, d.pow(-power), torch.zeros_like(d))  # (b, n, K)
        return (w @ colours) / w.sum(-1, keepdim=True).clamp_min(torch.finfo(w.dtype).tiny)

    return _fill_by_distance(images, observed, weighted)


def mean_fill(images: torch.Tensor, observed: torch.Tensor) -> torch.Tensor:
    """Every pixel takes the mean colour of its image's observed pixels.

    Args:
        images: ``(B, 3, H, W)`` images (only the observed pixels are read).
        observed: ``(B, K)`` int64 raster indices of each image's observed pixels, ``K >= 1``.

    Returns:
        ``(B, 3, H, W)``, constant per image and channel.

    Raises:
        ShapeError: wrong shapes or dtypes, an empty observed set, or indices outside the image.
    """
    _check_observed(images, observed)
    B, C, H, W = images.shape
    colours = images.flatten(2).gather(2, observed[:, None, :].expand(-1, C, -1))  # (B, C, K)
    return colours.mean(-1)[..., None, None].expand(B, C, H, W).clone()


#: the baselines, in the order they are reported (and preferred when their PSNRs tie)
BASELINES: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "nearest": nearest_fill,
    "idw": idw_fill,
    "mean": mean_fill,
}


# ----------------------------------------------------------------------------------------------
# the evaluation


def observed_count(frac: float, n_pixels: int) -> int:
    """Pixels observed at fraction ``frac`` of ``n_pixels``: ``max(1, round(frac·n_pixels))``.

    Raises:
        ConfigError: ``frac`` outside (0, 1].
    """
    if not (isinstance(frac, (int, float)) and 0 < frac <= 1):
        raise ConfigError(f"observed fraction {frac!r} must lie in (0, 1]")
    return max(1, round(frac * n_pixels))


def draw_observed(n_images: int, n_pixels: int, frac: float, seed: int = 0) -> torch.Tensor:
    """The observed pixels of each image at fraction ``frac``.

    One generator seeded with ``seed`` draws, image after image,
    ``torch.randperm(n_pixels)[:k].sort().values``; so the draws of one fraction do not depend on
    the other fractions evaluated, and the pixels of a smaller fraction are among those of a larger one.

    Args:
        n_images: images to draw for.
        n_pixels: pixels of an image (``H·W``).
        frac: observed fraction in (0, 1].
        seed: seeds the generator.

    Returns:
        ``(n_images, k)`` int64 raster indices, sorted within each row.

    Raises:
        ConfigError: ``frac`` outside (0, 1].
    """
    k = observed_count(frac, n_pixels)
    g = torch.Generator().manual_seed(seed)
    rows = [torch.randperm(n_pixels, generator=g)[:k].sort().values for _ in range(n_images)]
    return torch.stack(rows) if rows else torch.empty(0, k, dtype=torch.int64)


def _device_of(method: Any) -> torch.device:
    parameters = getattr(method, "parameters", None)
    first = next(iter(parameters()), None) if callable(parameters) else None
    return first.device if first is not None else torch.device("cpu")


def _fractions(obs_fracs: Sequence[float]) -> list[float]:
    fracs = [float(f) for f in obs_fracs]
    if not fracs:
        raise ConfigError("obs_fracs is empty; give at least one observed fraction in (0, 1]")
    for f in fracs:
        observed_count(f, 1)
    if len(set(fracs)) != len(fracs):
        raise ConfigError(f"obs_fracs {fracs} repeat a fraction")
    return fracs


@torch.no_grad()
def evaluate_recon(
    method: Any,
    images: torch.Tensor,
    obs_fracs: Sequence[float],
    seed: int = 0,
    batch_size: int = 64,
    n_shown: int = 8,
) -> dict[str, Any]:
    """Score ``method.reconstruct`` and the baselines on the same observed pixels of each image.

    Per fraction, the mean over images of the per-image PSNR and SSIM against the whole image is
    reported; a perfect reconstruction (PSNR ``inf``) counts as :data:`PSNR_CAP` dB in the mean.
    The best baseline is the one of highest mean PSNR (ties: the first of :data:`BASELINES`), and
    ours beats it when its mean PSNR is strictly higher.

    Args:
        method: any object with ``reconstruct(images (B, 3, H, W), observed (B, K)) -> (B, 3, H, W)``;
            it receives both on the device of its first parameter (the CPU when it has none).
        images: ``(N, 3, H, W)`` held-out images in [0, 1], ``H, W >= 11`` (SSIM's window).
        obs_fracs: observed fractions, each in (0, 1].
        seed: seeds the observed pixels (:func:`draw_observed`).
        batch_size: images per ``reconstruct`` call.
        n_shown: images whose reconstructions are kept for the pictures.

    Returns:
        The ``recon.json`` content (see the module docstring), plus ``"shown"``:
        ``{"images": (S, 3, H, W), "fractions": {key: {"observed": (S, K), "ours": ..., <baseline>: ...}}}``
        tensors of the first ``S = min(n_shown, N)`` images, which :func:`write_recon_json` leaves out.

    Raises:
        ConfigError: a fraction outside (0, 1], none or a repeated one, ``batch_size < 1`` or ``n_shown < 0``.
        ShapeError: images not ``(N, 3, H, W)`` floats with ``N >= 1``, or a reconstruction of another shape.
        DataError: pixels outside [0, 1].
    """
    _check_images(images)
    fracs = _fractions(obs_fracs)
    if batch_size < 1 or n_shown < 0:
        raise ConfigError(f"need batch_size >= 1 and n_shown >= 0, got {batch_size} and {n_shown}")
    N, _, H, W = images.shape
    if N == 0:
        raise ShapeError("images: no images to evaluate (N = 0)")
    low, high = float(images.min()), float(images.max())
    if low < 0 or high > 1:
        raise DataError(f"images: pixel values span [{low:.4g}, {high:.4g}]; reconstruct expects [0, 1]")
    device = _device_of(method)
    names = ("ours", *BASELINES)
    results: dict[str, Any] = {
        "fractions": {},
        "n_images": N,
        "image_size": [H, W],
        "seed": seed,
        "psnr_cap_db": PSNR_CAP,
    }
    shown: dict[str, Any] = {"images": images[:n_shown].clone(), "fractions": {}}
    for frac in fracs:
        observed = draw_observed(N, H * W, frac, seed)  # (N, K)
        scores: dict[str, dict[str, list[torch.Tensor]]] = {n: {"psnr": [], "ssim": []} for n in names}
        kept: dict[str, list[torch.Tensor]] = {n: [] for n in names}
        for s in range(0, N, batch_size):
            x, obs = images[s : s + batch_size], observed[s : s + batch_size]  # (b, 3, H, W), (b, K)
            ours = method.reconstruct(x.to(device), obs.to(device))
            if not isinstance(ours, torch.Tensor) or ours.shape != x.shape:
                shape = tuple(ours.shape) if isinstance(ours, torch.Tensor) else type(ours).__name__
                raise ShapeError(f"reconstruct returned {shape} for images of shape {tuple(x.shape)}")
            fills = {"ours": ours.detach().to("cpu", x.dtype)}
            fills.update({name: fill(x, obs) for name, fill in BASELINES.items()})
            for name, y in fills.items():
                scores[name]["psnr"].append(psnr(y, x).clamp(max=PSNR_CAP))
                scores[name]["ssim"].append(ssim(y, x))
                kept[name].append(y[: max(0, n_shown - s)])
        entry: dict[str, Any] = {"observed_pixels": observed.shape[1]}
        for name in names:
            entry[name] = {metric: float(torch.cat(v).double().mean()) for metric, v in scores[name].items()}
        best = max(BASELINES, key=lambda name: entry[name]["psnr"])  # max keeps the first of equal PSNRs
        entry["best_baseline"] = best
        entry["beats_best_baseline"] = entry["ours"]["psnr"] > entry[best]["psnr"]
        results["fractions"][str(frac)] = entry
        shown["fractions"][str(frac)] = {
            "observed": observed[:n_shown],
            **{name: torch.cat(kept[name]) for name in names},
        }
    results["shown"] = shown
    return results


def write_recon_json(results: dict[str, Any], path: str | Path) -> Path:
    """Write :func:`evaluate_recon` results, without the kept tensors, as JSON atomically.

    Returns:
        The path written.
    """
    path = Path(path)
    atomic_write_json(path, {k: v for k, v in results.items() if k != "shown"})
    return path


def format_recon_table(results: dict[str, Any]) -> str:
    """A plain-text table: fraction, observed pixels, ours PSNR / SSIM, each baseline's PSNR, margin.

    The margin is ours minus the best baseline's mean PSNR (dB), with the best baseline named.
    """
    head = f"{'fraction':>8} {'pixels':>7} {'ours PSNR':>9} {'ours SSIM':>9}"
    head += "".join(f" {name + ' PSNR':>12}" for name in BASELINES) + f" {'margin (dB)':>18}"
    lines = [head, "-" * len(head)]
    for key, entry in results["fractions"].items():
        best = entry["best_baseline"]
        margin = entry["ours"]["psnr"] - entry[best]["psnr"]
        ours = entry["ours"]
        row = f"{key:>8} {entry['observed_pixels']:>7d} {ours['psnr']:>9.2f} {ours['ssim']:>9.3f}"
        row += "".join(f" {entry[name]['psnr']:>12.2f}" for name in BASELINES)
        row += f" {f'{margin:+.2f} vs {best}':>18}"
        lines.append(row)
    lines.append(
        f"{results['n_images']} images of {results['image_size'][0]} x {results['image_size'][1]}, "
        f"mean of per-image PSNR (perfect = {results['psnr_cap_db']:g} dB) and SSIM (11x11 Gaussian, valid)"
    )
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------
# pictures


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def draw_psnr_curve(results: dict[str, Any], path: str | Path) -> Path:
    """Mean PSNR against the observed fraction (log x axis): ours and each baseline."""
    plt = _pyplot()
    path = Path(path)
    keys = list(results["fractions"])
    fracs = [float(k) for k in keys]
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, style in (("ours", "o-"), *((b, "s--") for b in BASELINES)):
        ax.plot(fracs, [results["fractions"][k][name]["psnr"] for k in keys], style, label=name)
    ax.set_xscale("log")
    ax.set_xticks(fracs, labels=keys)
    ax.minorticks_off()
    ax.set_xlabel("observed fraction of the pixels")
    ax.set_ylabel("mean PSNR (dB)")
    ax.set_title(f"reconstruction from observed pixels ({results['n_images']} images)", fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _display(image: torch.Tensor) -> Any:
    """``(3, H, W)`` -> ``(H, W, 3)`` numpy array in [0, 1]."""
    return image.detach().float().cpu().clamp(0, 1).permute(1, 2, 0).numpy()


def draw_recon_grid(results: dict[str, Any], key: str, path: str | Path) -> Path:
    """One column per kept image; rows: original, observed pixels on grey, ours, the best baseline.

    Args:
        results: :func:`evaluate_recon` output (with ``"shown"``).
        key: the fraction, as a key of ``results["fractions"]``.
        path: the PNG to write.

    Returns:
        The path written.
    """
    plt = _pyplot()
    path = Path(path)
    images = results["shown"]["images"]
    kept = results["shown"]["fractions"][key]
    best = results["fractions"][key]["best_baseline"]
    S, C = images.shape[:2]
    observed = images.flatten(2).gather(2, kept["observed"][:, None, :].expand(-1, C, -1))  # (S, C, K)
    grey = (
        torch.full_like(images, 0.5)
        .flatten(2)
        .scatter(2, kept["observed"][:, None, :].expand(-1, C, -1), observed)
        .view_as(images)
    )
    rows = [
        ("original", images, None),
        (f"observed ({results['fractions'][key]['observed_pixels']} px)", grey, None),
        ("ours", kept["ours"], psnr(kept["ours"], images)),
        (f"{best} (best baseline)", kept[best], psnr(kept[best], images)),
    ]
    fig, axes = plt.subplots(len(rows), max(S, 1), figsize=(1.6 * max(S, 1), 1.8 * len(rows)), squeeze=False)
    for r, (label, pictures, scores) in enumerate(rows):
        for i in range(axes.shape[1]):
            ax = axes[r, i]
            ax.set_xticks([])
            ax.set_yticks([])
            if i >= S:
                ax.axis("off")
                continue
            ax.imshow(_display(pictures[i]), interpolation="nearest")
            if scores is not None:
                ax.set_title(f"{float(scores[i]):.1f} dB", fontsize=7)
        axes[r, 0].set_ylabel(label, fontsize=8)
    fig.suptitle(f"observed fraction {key}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def draw_recon_pictures(results: dict[str, Any], folder: str | Path) -> list[Path]:
    """Draw ``psnr_vs_fraction.png`` and one ``recon_grid_<frac>.png`` per fraction into ``folder``.

    Returns:
        The paths written.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    drawn = [draw_psnr_curve(results, folder / "psnr_vs_fraction.png")]
    for key in results["fractions"]:
        drawn.append(draw_recon_grid(results, key, folder / f"recon_grid_{key}.png"))
    return drawn


# ----------------------------------------------------------------------------------------------
# held-out data and ``mambajepa eval recon``


def held_out_images(config: Any, n_images: int) -> tuple[torch.Tensor, str]:
    """The first ``n_images`` images of the run's test split (its val split when it has no test split).

    ImageNet-normalised data (``normalize: true``) is mapped back to [0, 1].

    Args:
        config: a run config whose ``data`` section is a :class:`~mambajepa.specs.DatasetSpec`.
        n_images: images to read (fewer when the split holds fewer).

    Returns:
        ``((n, 3, H, W) images in [0, 1], the split read)``.

    Raises:
        ConfigError: ``n_images < 1``, no ``data`` section, or a dataset with neither split.
        ShapeError: items whose tensor is not an image ``(3, H, W)``.
    """
    if n_images < 1:
        raise ConfigError(f"n_images={n_images} must be >= 1")
    spec = getattr(config, "data", None)
    if not isinstance(spec, DatasetSpec):
        raise ConfigError(f"the run config has no dataset section (data: {spec!r})")
    for split in ("test", "val"):
        dataset = spec.build(split)
        if dataset is not None:
            break
    else:
        raise ConfigError(f"dataset {spec.name!r} of the run has neither a test nor a val split")
    count = min(n_images, len(dataset))
    images = torch.stack([split_sample(dataset[i])[0] for i in range(count)]).float()
    _check_images(images, f"{spec.name!r} {split} images")
    if spec.arguments().get("normalize", False):
        mean, std = torch.tensor(IMAGENET_MEAN), torch.tensor(IMAGENET_STD)
        images = (images * std[:, None, None] + mean[:, None, None]).clamp(0, 1)
    return images, split


@register_evaluation("recon", applies_to=["nf_jepa"])
class ReconEvaluation(Evaluation):
    """``mambajepa eval recon --checkpoint RUN``: print the table, write ``RUN/recon.json`` and pictures."""

    help = "reconstruction PSNR / SSIM from a few observed pixels, vs nearest, IDW and mean fills"
    description = (
        "Reconstruct held-out images from random observed pixels at several fractions with the run's "
        "reconstruct(), and with nearest-neighbour, inverse-distance-weighted and mean-colour fills of "
        "the same pixels; report mean PSNR and SSIM."
    )

    def configure(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--obs_fracs",
            "--obs-fracs",
            dest="obs_fracs",
            nargs="+",
            type=float,
            default=list(DEFAULT_FRACTIONS),
            help="observed fractions of the pixels, each in (0, 1]",
        )
        parser.add_argument("--n-images", type=int, default=256, help="held-out images to reconstruct")
        parser.add_argument("--seed", type=int, default=0, help="seeds the observed pixels")
        parser.add_argument("--batch-size", type=int, default=64, help="images per reconstruct() call")
        parser.add_argument(
            "--device", default=None, help="where the method runs (default: cuda when available, else cpu)"
        )
        parser.add_argument(
            "--out", default=None, help="where to write recon.json (default: <run dir>/recon.json)"
        )
        parser.add_argument("--no-pictures", action="store_true", help="draw no pictures")

    def run(self, args: argparse.Namespace) -> int:
        run = load_run(args.checkpoint)
        images, split = held_out_images(run.config, args.n_images)
        device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
        method = run.method.to(device)
        print(
            f"eval recon: {len(images)} {split} images, fractions {args.obs_fracs}, on {device}", flush=True
        )
        results = evaluate_recon(method, images, args.obs_fracs, seed=args.seed, batch_size=args.batch_size)
        results.update(split=split, run=str(run.run_dir), checkpoint=str(run.checkpoint))
        out = Path(args.out) if args.out else run.run_dir / "recon.json"
        if not args.no_pictures:
            results["pictures"] = [str(p) for p in draw_recon_pictures(results, out.parent / "pictures")]
        write_recon_json(results, out)
        print(format_recon_table(results))
        print(f"wrote {out}")
        return 0
