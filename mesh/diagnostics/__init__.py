"""Diagnostics: one catalog of codes, the Diagnostic value, and its rendering.

Every problem meshplay finds in user input is a :class:`Diagnostic` rendered as
``file:line:col: level[CODE] Kind ns/name: message``, followed by the field path and a hint.
Codes reuse Istio's ``IST`` numbers only where the meaning is exactly the one ``istioctl analyze``
gives them; everything else uses meshplay's own families:

* ``MPY1xxx`` YAML and document structure (syntax, kinds, metadata, duplicates);
* ``MPY2xxx`` fields meshplay accepts but does not model, or that have no effect on the mesh;
* ``MPY3xxx`` cross-resource analysis that Istio has no code for;
* ``MPY4xxx`` lesson and app files (lesson.yaml, behavior.yaml);
* ``MPY5xxx`` runners: what a real data plane said about the generated configuration.

The catalog is in ``catalog`` (codes in ``istio_codes`` and ``meshplay_codes``), the value and
its rendering in ``diagnostic``, wording helpers in ``text``. Outside itself this package
imports only the standard library.
"""

from mesh.diagnostics.catalog import CATALOG
from mesh.diagnostics.code import Code, Level
from mesh.diagnostics.diagnostic import Diagnostic, DiagnosticError, render
from mesh.diagnostics.text import did_you_mean, format_path

__all__ = [
    "CATALOG",
    "Code",
    "Diagnostic",
    "DiagnosticError",
    "Level",
    "did_you_mean",
    "format_path",
    "render",
]
