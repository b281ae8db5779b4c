"""Losses: JEPA energies, collapse regularizers (VICReg, Barlow Twins) and InfoNCE."""

from mambajepa.losses.barlow_twins import BarlowTwinsLoss, barlow_twins_loss
from mambajepa.losses.energy import (
    ENERGIES,
    Energy,
    cosine_energy,
    energy,
    l1_energy,
    l2_energy,
    smooth_l1_energy,
)
from mambajepa.losses.infonce import InfoNCE, info_nce
from mambajepa.losses.vicreg import (
    VICRegLoss,
    VICRegTerms,
    covariance_loss,
    variance_loss,
    vicreg_loss,
    vicreg_terms,
)

__all__ = [
    "ENERGIES",
    "BarlowTwinsLoss",
    "Energy",
    "InfoNCE",
    "VICRegLoss",
    "VICRegTerms",
    "barlow_twins_loss",
    "cosine_energy",
    "energy",
    "info_nce",
    "l1_energy",
    "l2_energy",
    "smooth_l1_energy",
    "covariance_loss",
    "variance_loss",
    "vicreg_loss",
    "vicreg_terms",
]
