"""Per-epoch checkpoints: the weights, the optimizer and the progress of a run being trained.

A checkpoint is one .npz file replaced atomically after every epoch. It carries a
fingerprint of the data and every parameter but the epoch count, so that only the
same training can resume from it (with more epochs, if asked).
"""
from __future__ import annotations

import dataclasses
import json
import shutil
import zipfile
from pathlib import Path

import numpy as np

from movielinks.common.files import atomic_file
from movielinks.trainer.errors import TrainerError

CHECKPOINT_FILE = "checkpoint.npz"


@dataclasses.dataclass
class TrainingState:
    """What a checkpoint holds besides the weights."""

    epoch: int = 0  # epochs completed
    losses: list[float] = dataclasses.field(default_factory=list)
    epoch_seconds: list[float] = dataclasses.field(default_factory=list)
    train_seconds: float = 0.0
    samples: int = 0


def default_checkpoint_dir(out: str | Path) -> Path:
    out = Path(out)
    return out.with_name(out.name + ".checkpoint")


def fingerprint(dataset_sha256: str, params: dict) -> str:
    """What must match for a checkpoint to be resumed (epochs may grow)."""
    return json.dumps({"dataset_sha256": dataset_sha256, "params": {k: v for k, v in params.items() if k != "epochs"}},
                      sort_keys=True)


@dataclasses.dataclass(frozen=True)
class Checkpoint:
    """The checkpoint of one training, in `directory`; `model`, `objective` and
    `optimizer` are the Keras objects whose weights it saves and restores."""

    directory: Path
    fingerprint: str

    @property
    def path(self) -> Path:
        return self.directory / CHECKPOINT_FILE

    def exists(self) -> bool:
        return self.path.exists()

    def save(self, state: TrainingState, model, objective, optimizer) -> None:
        """Write every weight into the .npz a variable at a time, straight to the file (replaced
        atomically): at a million films the weights and Adam's moments are about 1.8 GB, and a
        copy of them all, then an in-memory archive of them, would be two more."""
        self.directory.mkdir(parents=True, exist_ok=True)
        weights = [*(("model", v) for v in model.weights), *(("objective", v) for v in objective.weights),
                   *(("optimizer", v) for v in optimizer.variables)]
        counts = dict.fromkeys(("model", "objective", "optimizer"), 0)
        meta = json.dumps({"fingerprint": self.fingerprint, "state": dataclasses.asdict(state)})
        with atomic_file(self.path) as f, zipfile.ZipFile(f, "w", allowZip64=True) as archive:
            for owner, variable in weights:
                name, counts[owner] = f"{owner}_{counts[owner]}", counts[owner] + 1
                _write_member(archive, name, np.asarray(variable.numpy()))
            _write_member(archive, "meta", np.array(meta))

    def restore(self, model, objective, optimizer) -> TrainingState:
        """Load the weights into the given objects; TrainerError if there is no checkpoint or it is another run's."""
        if not self.path.is_file():
            raise TrainerError(f"{self.path}: no checkpoint to resume from; train without --resume")
        try:
            with np.load(self.path) as saved:
                meta = json.loads(str(saved["meta"]))
                if meta["fingerprint"] != self.fingerprint:
                    raise TrainerError(
                        f"{self.path}: the checkpoint was made with other data or parameters; "
                        "resume with the same ones, or remove it"
                    )
                model.set_weights([saved[f"model_{i}"] for i in range(len(model.get_weights()))])
                objective.set_weights([saved[f"objective_{i}"] for i in range(len(objective.get_weights()))])
                for i, variable in enumerate(optimizer.variables):
                    variable.assign(saved[f"optimizer_{i}"])
        except (OSError, KeyError, ValueError) as e:
            raise TrainerError(f"{self.path}: unreadable checkpoint ({e}); remove it and train again") from e
        return TrainingState(**meta["state"])

    def remove(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)


def _write_member(archive: zipfile.ZipFile, name: str, value: np.ndarray) -> None:
    """One array as `name`.npy in an open archive, as np.savez writes it (np.load reads it back)."""
    with archive.open(f"{name}.npy", "w", force_zip64=True) as member:
        np.lib.format.write_array(member, value, allow_pickle=False)
