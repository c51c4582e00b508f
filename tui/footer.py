"""The key footer, rebuilt only when the keys it shows change.

Textual's :class:`~textual.widgets.Footer` removes and mounts all its key widgets whenever the
screen's bindings *may* have changed, which is every focus change: every view switch (``1``-``5``)
moved the focus and paid for a dozen widget mounts and a relayout (50-290 ms while a simulation
held the other half of the interpreter). This footer compares what it would show (key, label,
enabled) with what it shows and keeps its widgets when nothing changed.
"""

from __future__ import annotations

from textual.widgets import Footer

__all__ = ["KeyFooter"]

Shown = tuple[tuple[str, str, str, bool], ...]


class KeyFooter(Footer):
    """A :class:`~textual.widgets.Footer` that skips rebuilds which would change nothing."""

    def __init__(self) -> None:
        super().__init__()
        self._shown: Shown | None = None

    def _wanted(self) -> Shown:
        """(key, action, description, enabled) of every binding the footer would show."""
        palette = self.app.COMMAND_PALETTE_BINDING
        return tuple(
            (binding.key, binding.action, binding.description, enabled)
            for key, (_, binding, enabled, _) in self.screen.active_bindings.items()
            if binding.show or key == palette
        )

    async def recompose(self) -> None:
        """Rebuild the key widgets, unless they already show exactly these bindings."""
        if not self.is_attached:
            return
        wanted = self._wanted()
        if wanted == self._shown and self.children:
            return
        self._shown = wanted
        await super().recompose()
