"""The open document: the current SceneState, its undo stack, and the loaded generator's
description. The only place edits are applied: views call the edit methods here, each
builds the new state with SceneState's own edit methods and pushes one EditCommand."""
from __future__ import annotations

import itertools
import random
import time
from collections.abc import Hashable
from dataclasses import replace
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QUndoStack

from models.document.scene import MAX_SIGMA, SEED_LIMIT, SceneState

from .commands import EditCommand

if TYPE_CHECKING:
    from .render_worker import GeneratorInfo

GESTURE_GAP_S = 0.8  # wheel notches / spin-box steps closer than this are one undo step


class Document(QObject):
    stateChanged = Signal(object)  # the new SceneState (after an edit, undo, redo or reset)
    generatorChanged = Signal(object)  # GeneratorInfo of a newly opened generator

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self.undo_stack = QUndoStack(self)
        self.info: GeneratorInfo | None = None
        self._state: SceneState | None = None
        self._rng = random.Random()  # seeds for "new style", "resample": any fresh value will do
        self._merge_ids = itertools.count(1)
        self._gesture: tuple[Hashable, float, int] | None = None

    @property
    def state(self) -> SceneState | None:
        return self._state

    @property
    def config(self):
        return None if self.info is None else self.info.config

    # ---- the two ways the state changes --------------------------------------------
    def reset(self, info: GeneratorInfo, state: SceneState) -> None:
        """A new generator and its scene: history starts over (older states do not fit it)."""
        self.undo_stack.clear()
        self.info = info
        self._state = state
        self.generatorChanged.emit(info)
        self.stateChanged.emit(state)

    def apply(self, after: SceneState, text: str, merge_id: Hashable | None = None) -> bool:
        """Push one undoable edit; no command for an edit that changes nothing (the
        playhead is not something an edit changes: see set_time)."""
        if self._state is None or after.timeless() == self._state.timeless():
            return False
        self.undo_stack.push(EditCommand(self._set_state, self._state, after, text, merge_id))
        return True

    def _set_state(self, state: SceneState) -> None:
        # The playhead is not part of the history: undo restores the scene, not the time.
        if self._state is not None and state.time != self._state.time:
            state = replace(state, time=self._state.time)
        self._state = state
        self.stateChanged.emit(state)

    def set_time(self, seconds: float) -> bool:
        """Move the playhead (video generators). Not an edit: no undo step, not unsaved."""
        if self._state is None or seconds == self._state.time:
            return False
        self._state = replace(self._state, time=float(seconds))
        self.stateChanged.emit(self._state)
        return True

    # ---- merge ids -----------------------------------------------------------------
    def new_merge_id(self) -> int:
        """One id per drag: all its moves merge into one command."""
        return next(self._merge_ids)

    def gesture_id(self, key: Hashable, held: bool = False) -> int:
        """Wheel notches and spin-box steps on the same control, in quick succession, merge;
        `held` (a slider's handle still pressed): they merge however long the pause."""
        now = time.monotonic()
        if self._gesture and self._gesture[0] == key and (held or now - self._gesture[1] < GESTURE_GAP_S):
            merge_id = self._gesture[2]
        else:
            merge_id = self.new_merge_id()
        self._gesture = (key, now, merge_id)
        return merge_id

    def fresh_seed(self) -> int:
        return self._rng.randrange(SEED_LIMIT)

    # ---- edits -----------------------------------------------------------------------
    def move_handle(self, level: int, index: int, center: tuple[float, float], merge_id: Hashable) -> bool:
        name = f"object {index + 1}" if self._state.hierarchy is None else _level_name(level, index)
        # Named by where it is now: the drag's merged step then says where the drag ended.
        text = f"Move {name} to ({center[0]:.2f}, {center[1]:.2f})"
        return self.apply(self._state.move_center(level, index, center), text, merge_id)

    def set_sigma(self, index: int, sigma: float, merge_id: Hashable | None = None) -> bool:
        sigma = min(max(float(sigma), 0.0), MAX_SIGMA)
        text = f"Remove object {index + 1}" if sigma == 0 else f"Size of object {index + 1} to {sigma:.2f}"
        return self.apply(self._state.with_object(index, sigma=sigma), text, merge_id)

    def set_visible(self, index: int, visible: bool) -> bool:
        text = f"{'Show' if visible else 'Hide'} object {index + 1}"
        return self.apply(self._state.with_object(index, visible=bool(visible)), text)

    def set_locked(self, index: int, locked: bool) -> bool:
        text = f"{'Lock' if locked else 'Unlock'} object {index + 1}"
        return self.apply(self._state.with_object(index, locked=bool(locked)), text)

    def set_kind(self, index: int, kind: str) -> bool:
        """Make object `index` a `kind` (one of the generator's object_kinds)."""
        return self.apply(self._state.with_object(index, kind=kind), f"Object {index + 1} a {kind}")

    def new_style(self, index: int) -> bool:
        return self.apply(self._state.with_object(index, style_seed=self.fresh_seed()),
                          f"New style for object {index + 1}")

    def copy_style(self, index: int, source: int) -> bool:
        seed = self._state.objects[source].style_seed
        return self.apply(self._state.with_object(index, style_seed=seed),
                          f"Style of object {source + 1} to object {index + 1}")

    def resample_blocks(self, indices) -> bool:
        indices = sorted(set(indices))
        if not indices:
            return False
        text = f"Resample block {indices[0] + 1}" if len(indices) == 1 else f"Resample {len(indices)} blocks"
        return self.apply(self._state.resample_blocks(indices, self.fresh_seed()), text)

    def new_sample(self, seed: int | None = None) -> bool:
        seed = self.fresh_seed() if seed is None else int(seed)
        prior = self.config.layout_prior if self.config is not None else "free"
        kinds = tuple(self.config.object_kinds) if self.config is not None else ()
        return self.apply(self._state.new_sample(seed, prior, kinds), f"New sample (seed {seed})")

    def set_truncation(self, psi: float, merge_id: Hashable | None = None) -> bool:
        return self.apply(replace(self._state, truncation=round(float(psi), 4)),
                          f"Truncation {psi:.2f}", merge_id)

    def new_motion(self) -> bool:
        """Draw new motion codes: the same content moves differently (video generators)."""
        return self.apply(replace(self._state, motion_seed=self.fresh_seed()), "New motion")

    def set_offsets_on(self, on: bool) -> bool:
        return self.apply(replace(self._state, offsets_on=bool(on)), f"Offsets {'on' if on else 'off'}")

    def set_offset_strength(self, strength: float, merge_id: Hashable | None = None) -> bool:
        return self.apply(replace(self._state, offset_strength=round(float(strength), 4)),
                          f"Offset strength {strength:.2f}", merge_id)

    def replace_state(self, state: SceneState, text: str) -> bool:
        """A whole scene at once (opening a session made with the same generator)."""
        state.check_fits(self.config)
        changed = self.apply(state, text)
        return self.set_time(state.time) or changed  # the session's playhead too (undo keeps times)


def _level_name(level: int, index: int) -> str:
    return "figure" if level == 0 else f"level-{level} center {index + 1}"
