"""Checkpoint folders (`latest/`, `best/`) that a kill at any moment leaves usable.

`tf.train.Checkpoint.write` writes its final `.index` in place while merging shards, so a
kill can leave a truncated one. Here each save is written to `<folder>/.ckpt.staging/`, its
complete files are renamed into place (data first, index last), and only then does the
folder's `checkpoint` file (TensorFlow's own format, written through a rename) point at
it; older checkpoints are removed after that. `tf.train.latest_checkpoint(folder)` works
on these folders. Checkpoint names carry the round: `ckpt-<round>` (`ckpt-<round>_<i>`
when a re-run round must not overwrite the checkpoint the folder points at).

Only `restore` needs TensorFlow, and imports it when called.
"""
import os
import re
import shutil

from zscrgan.errors import BadInput
from zscrgan.files import atomic_write, fault_point, staging_folder

STATE_FILE = "checkpoint"
_STATE_LINE = re.compile(r'^model_checkpoint_path:\s*"(.*)"\s*$', re.M)


class CheckpointMismatch(BadInput):
    """A checkpoint that does not fit the model built from the current config and dataset."""


def _stem(filename):
    return filename.split(".", 1)[0]


def round_of(prefix):
    """The round in a checkpoint's name (`.../ckpt-12` or `.../ckpt-12_1` -> 12)."""
    return int(os.path.basename(prefix).split("-", 1)[1].split("_")[0])


class CheckpointSlot:
    """One folder holding the newest checkpoint of one kind."""

    def __init__(self, folder):
        self.folder = folder
        self.name = os.path.basename(folder)

    def current(self):
        """Prefix of the checkpoint the folder points at, or None."""
        path = os.path.join(self.folder, STATE_FILE)
        if not os.path.isfile(path):
            return None
        with open(path) as f:
            match = _STATE_LINE.search(f.read())
        if not match:
            return None
        prefix = os.path.join(self.folder, match.group(1))
        return prefix if os.path.isfile(prefix + ".index") else None

    def save(self, ckpt, number):
        """Write `ckpt` (a tf.train.Checkpoint) as checkpoint `number` and point the folder at it;
        returns its prefix."""
        stem = self.stage(ckpt, number)
        self.point(stem)
        self.prune(stem)
        return os.path.join(self.folder, stem)

    def stage(self, ckpt, number):
        """Write `ckpt` as checkpoint `number` beside the current one, whole (its index renamed
        into place last), without pointing the folder at it; returns its stem (`ckpt-<number>`)."""
        staging = staging_folder(os.path.join(self.folder, "ckpt"))
        ckpt.write(os.path.join(staging, "ckpt"))
        fault_point(f"checkpoint:{self.name}")
        stem = self._free_stem(number)
        self._remove(lambda s: s == stem)  # leftovers of a killed save with this name
        files = sorted((f for f in os.listdir(staging) if f.startswith("ckpt.")),
                       key=lambda f: f.endswith(".index"))
        for f in files:
            os.replace(os.path.join(staging, f), os.path.join(self.folder, stem + f[len("ckpt"):]))
        shutil.rmtree(staging, ignore_errors=True)
        return stem

    def point(self, stem):
        """Make the staged checkpoint `stem` the folder's current one (one rename)."""
        text = f'model_checkpoint_path: "{stem}"\nall_model_checkpoint_paths: "{stem}"\n'
        atomic_write(os.path.join(self.folder, STATE_FILE), text.encode(), f"checkpoint_state:{self.name}")

    def prune(self, stem):
        """Remove every checkpoint but `stem`."""
        self._remove(lambda s: s != stem)

    def staged(self, number):
        """The stem of a whole checkpoint of round `number` that the folder holds but does not
        point at (the newest such), or None."""
        current = self.current()
        stems = [f[:-len(".index")] for f in os.listdir(self.folder) if f.endswith(".index")
                 and re.fullmatch(rf"ckpt-{number}(_\d+)?", f[:-len(".index")])] if os.path.isdir(self.folder) else []
        stems = [s for s in stems if current is None or os.path.basename(current) != s]
        return max(stems, key=lambda s: int(s.partition("_")[2] or 0), default=None)

    def _free_stem(self, number):
        stem, current, i = f"ckpt-{number}", self.current(), 0
        while current is not None and os.path.basename(current) == stem:
            i += 1
            stem = f"ckpt-{number}_{i}"
        return stem

    def _remove(self, which):
        for f in os.listdir(self.folder):
            if f.startswith("ckpt-") and which(_stem(f)):
                os.remove(os.path.join(self.folder, f))


def restore(ckpt, prefix):
    """Restore every variable of `ckpt` from `prefix`, or raise CheckpointMismatch."""
    import tensorflow as tf
    try:
        status = ckpt.read(prefix)
        status.assert_existing_objects_matched()
    except (ValueError, AssertionError, tf.errors.OpError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointMismatch(f"checkpoint {prefix} does not fit the model built from this config "
                                 f"and dataset ({first})")
    finally:
        status = None  # drop the restore coordinator now, not at interpreter exit
