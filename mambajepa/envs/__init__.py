"""Environments: the Two Rooms goal-reaching benchmark and its offline random-walk data.

Imports only :mod:`mambajepa.core`, numpy, torch and gymnasium.
"""

from mambajepa.envs.trajectories import TwoRoomsTrajectories
from mambajepa.envs.two_rooms import (
    CONTACT_GAP,
    TwoRooms,
    TwoRoomsConfig,
    TwoRoomsLayout,
    check_layout,
    clip_norm,
    frame_to_rgb,
    sample_layout,
)

__all__ = [
    "CONTACT_GAP",
    "TwoRooms",
    "TwoRoomsConfig",
    "TwoRoomsLayout",
    "TwoRoomsTrajectories",
    "check_layout",
    "clip_norm",
    "frame_to_rgb",
    "sample_layout",
]
