"""Undo commands. One kind is enough: a SceneState is immutable and decides the whole
image, so every edit is "the scene was `before`, now it is `after`"."""
from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any

from PySide6.QtGui import QUndoCommand

MERGEABLE = 1000  # QUndoCommand.id() of commands that may merge; QUndoStack merges equal ids


class EditCommand(QUndoCommand):
    """(before, after) SceneStates. Commands with the same merge_id (one per drag or wheel
    gesture) merge into one, so a drag of 200 mouse events is one undo step."""

    def __init__(self, apply: Callable[[Any], None], before, after, text: str,
                 merge_id: Hashable | None = None):
        super().__init__(text)
        self._apply = apply  # the document's setter: the only thing commands may call
        self.before = before
        self.after = after
        self.merge_id = merge_id

    def id(self) -> int:
        return MERGEABLE if self.merge_id is not None else -1

    def mergeWith(self, other: QUndoCommand) -> bool:
        if not isinstance(other, EditCommand) or other.merge_id != self.merge_id:
            return False
        self.after = other.after
        # The step is named by where the gesture ended ("Offset strength 2.00"), not by the
        # first value it passed through.
        self.setText(other.text())
        # A drag that ends where it began changed nothing: QUndoStack then drops the command.
        # (The playhead may have moved meanwhile: it is not part of what an edit changes.)
        self.setObsolete(self.after.timeless() == self.before.timeless())
        return True

    def redo(self) -> None:
        self._apply(self.after)

    def undo(self) -> None:
        self._apply(self.before)
