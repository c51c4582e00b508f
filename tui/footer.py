"""The key footer, rebuilt only when the keys it shows change.

Textual's :class:`~textual.widgets.Footer` removes and mounts all its key widgets whenever the
screen's bindings *may* have changed, which is every focus change: every view switch (``1``-``5``)
moved the focus and paid for a dozen widget mounts and a relayout (50-290 ms while a simulation
held the other half of the interpreter). This footer compares what it would show (key, action,
label, enabled) with what it shows: it keeps its widgets when nothing changed, and when the
keys wanted are some of the keys it has, in the same order (the run view's keys are the
topology view's without ``n``/``e``/``x``), it only hides and shows them.
"""

from __future__ import annotations

from textual.widgets import Footer
from textual.widgets._footer import FooterKey

from tui.interpreter import UiTurn

__all__ = ["KeyFooter"]

Shown = tuple[tuple[str, str, str, bool], ...]


class KeyFooter(Footer):
    """A :class:`~textual.widgets.Footer` that skips rebuilds which would change nothing."""

    def __init__(self, turn: UiTurn | None = None) -> None:
        super().__init__()
        self._shown: Shown | None = None
        self._turn = turn
        """Claimed while rebuilding: a view switch is not drawn until the footer is."""

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
        if self._toggle(wanted):
            self._shown = wanted
            return
        self._shown = wanted
        if self._turn is None:
            await super().recompose()
            return
        self._turn.claim()
        try:
            await super().recompose()
        finally:
            self.call_after_refresh(self._turn.release)

    def _toggle(self, wanted: Shown) -> bool:
        """Show exactly the ``wanted`` keys by hiding the others, when every wanted key has a
        widget already and they come in the wanted order; False when the keys must be rebuilt."""
        keys = [child for child in self.children if isinstance(child, FooterKey)]
        if len(keys) != len(self.children) or self._shown is None:
            return False  # binding groups, or nothing composed yet
        have = {(k.key, k.action, k.description): k for k in keys}
        order = {ident: i for i, ident in enumerate(have)}
        wanted_ids = [(key, action, description) for key, action, description, _ in wanted]
        if any(ident not in have for ident in wanted_ids):
            return False
        positions = [order[ident] for ident in wanted_ids]
        if positions != sorted(positions):
            return False
        enabled = {(key, action, desc): on for key, action, desc, on in wanted}
        for ident, widget in have.items():
            shown = ident in enabled
            if widget.display != shown:
                widget.display = shown
            off = shown and not enabled[ident]
            if widget._disabled != off:  # FooterKey's own flag: dim, and a bell when clicked
                widget._disabled = off
                widget.set_class(off, "-disabled")
        return True
