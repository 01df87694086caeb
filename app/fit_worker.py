"""The render worker's side of a picture the user brings (issue 26): the fit itself, and
the fit files that fitted scenes are rendered with. Both run on the worker's thread
(app/render_worker.py), which owns the model; the GUI side is app/fitting.py.

torch and the model modules are imported inside the functions, as in render_worker.py:
the studio shows its window before torch loads.
"""
from __future__ import annotations

import copy
import logging
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

logger = logging.getLogger("steergan.worker")

# Fit files kept loaded (each with its generator: a tuned one is a whole copy of the
# model). Undo and redo between a few fits stay instant; an older one is read again.
MAX_LOADED_FITS = 4


class FitCache:
    """The fit file each fitted scene names, read, checked and (for a tuned fit) applied to
    a copy of the generator once per SHA-256, not for every frame of a drag.

    A fit that cannot be used (moved away with its session, damaged, made with another
    checkpoint) is said once, through `say`, for each file and folder it was looked for in;
    the scene then renders without it (its seeds' own styles), so the scene still opens."""

    def __init__(self, say: Callable[[str], None]):
        self._say = say
        self._loaded: OrderedDict[str, tuple] = OrderedDict()  # sha -> (base generator, to render with, FitData)
        # (sha, near) -> the fit files on disk when it was found unusable (_on_disk): looked for
        # again only when they change (the user puts the file back), not read and hashed for
        # every frame of a drag; said only the first time.
        self._refused: dict[tuple[str, str | None], tuple] = {}
        self._said: set[tuple[str, str | None]] = set()

    def clear(self) -> None:
        """A new generator: the fits and tuned copies of the old one go."""
        self._loaded.clear()
        self._refused.clear()
        self._said.clear()

    def add(self, fit, base) -> None:
        """A fit just made (and saved) here: no need to read it back."""
        from models.io.fit_file import tuned_copy

        self._keep(fit.sha256, (base, tuned_copy(base, fit), fit))

    def resolve(self, state, base, near: str | None, checkpoint_sha256: str | None):
        """(the generator to render `state` with, its fit or None). `base`: the loaded
        generator; `near`: the open session file, beside which its fit files are."""
        if state.fit is None:
            return base, None
        entry = self._loaded.get(state.fit)
        if entry is not None:
            if entry[0] is not base:  # the model moved (to the CPU, out of GPU memory): tune it again
                from models.io.fit_file import tuned_copy

                entry = (base, tuned_copy(base, entry[2]), entry[2])
            self._keep(state.fit, entry)
            return entry[1], entry[2]
        key = (state.fit, near)
        on_disk = _on_disk(state.fit, near)
        if self._refused.get(key) == on_disk:
            return base, None
        from models.io.fit_file import FitFileError, open_fit_for

        try:
            use, fit = open_fit_for(state, near, base, checkpoint_sha256)
        except FitFileError as exc:
            self._refused[key] = on_disk
            if key not in self._said:
                self._said.add(key)
                message = f"{exc}: the scene renders without the picture it was fitted to"
                logger.warning(message)
                self._say(message)
            return base, None
        self._refused.pop(key, None)
        self._keep(state.fit, (base, use, fit))
        return use, fit

    def _keep(self, sha: str, entry: tuple) -> None:
        self._loaded[sha] = entry
        self._loaded.move_to_end(sha)
        while len(self._loaded) > MAX_LOADED_FITS:
            self._loaded.popitem(last=False)


def run_fit(generator, checkpoint_sha256: str, path: str, options: dict, cancelled: Callable[[], bool],
            on_picture: Callable, progress: Callable):
    """Fit `generator` to the picture at `path` and save the fit file in the fit store.
    -> FitOutcome whose state names the saved file. `options`: FitSettings fields.
    Raises PictureError, BackboneError, FitFileError (each names its file), FitCancelled,
    ValueError (a generator that cannot be fitted). The generator is not modified."""
    from models.fit.optimize import FitCancelled, FitSettings, fit_picture
    from models.io.backbone_file import backbone_path, load_backbone
    from models.io.fit_file import fit_store, save_fit
    from models.io.picture import picture_tensor, read_picture

    picture = read_picture(path, generator.config.resolution)
    on_picture(picture)
    backbone, _ = load_backbone(backbone_path())
    if generator.const.device.type != "cpu":
        # The fit's tensors are made on the CPU (models/fit): it fits a CPU copy; the
        # fitted styles and weights then render on any device.
        generator = copy.deepcopy(generator).to("cpu")
    outcome = fit_picture(generator, picture_tensor(picture), checkpoint_sha256, backbone, FitSettings(**options),
                          progress=progress, cancelled=cancelled)
    if cancelled():  # cancelled as the last step ended: nothing is written
        raise FitCancelled()
    outcome.fit.info["picture"] = Path(path).name[:200]  # as `steergan fit` records it
    save_fit(outcome.fit, fit_store())  # the file's name (its hash) changes with the info
    outcome.state = replace(outcome.state, fit=outcome.fit.sha256)
    return outcome


def _on_disk(sha256: str, near: str | None) -> tuple:
    """The fit files named for `sha256` where they are looked for, with their sizes and times:
    two stats, where reading one is a read and a hash."""
    from models.io.fit_file import fit_candidates

    try:
        found = []
        for path in fit_candidates(sha256, near):
            st = path.stat()
            found.append((str(path), st.st_mtime_ns, st.st_size))
        return tuple(found)
    except OSError:  # a share gone away: as if nothing were there
        return ()
