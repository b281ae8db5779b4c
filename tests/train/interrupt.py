"""Stop a training run right after one of its checkpoints, as a kill would."""

from __future__ import annotations

import pytest

from mambajepa.core import checkpoint as ck
from mambajepa.train.trainer import Trainer


def interrupt_after(trainer: Trainer, n: int) -> None:
    """Run ``trainer.fit`` and stop it right after the checkpoint at step ``n``."""

    class Stop(Exception):
        pass

    save = trainer._save

    def save_then_stop():
        save()
        if trainer.step >= n:
            raise Stop

    trainer._save = save_then_stop
    with pytest.raises(Stop):
        trainer.fit()
    assert [p.name for p in ck.list_checkpoints(trainer.ckpt_root)][-1] == f"step_{n}"
