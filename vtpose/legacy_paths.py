"""Old import paths of the types ZenML recorded for artifacts stored before the library was laid out by area.

ZenML stores each artifact's data type as an import path (`vtpose.reports.EvaluationReport`) and imports it when
the artifact is loaded, so a store written by an older vtpose names modules that have since moved or split. This
finder answers each old module name with a small module holding exactly the types a store may name there, the
classes themselves, from their new homes; nothing in vtpose imports an old path itself.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
from types import ModuleType

# Old module -> {type name: its new module}, for every artifact data type an existing store may name.
MOVED_TYPES: dict[str, dict[str, str]] = {
    "vtpose.reports": {
        "EvaluationReport": "vtpose.training.reports",
        "TrainingCurves": "vtpose.training.reports",
    },
    "vtpose.variants": {
        "VariantReport": "vtpose.training.variants.report",
    },
}


class _MovedTypesLoader(importlib.abc.Loader):
    """Fills a fresh module named by the old path with the moved types (the new modules keep their own names)."""

    def __init__(self, types: dict[str, str]) -> None:
        self.types = types

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        """The default module object, named by the old path."""
        return None

    def exec_module(self, module: ModuleType) -> None:
        """Bind each moved type under its old name: the same class object, so `isinstance` holds across paths."""
        for name, new_module in self.types.items():
            setattr(module, name, getattr(importlib.import_module(new_module), name))
        names = sorted(self.types)
        module.__dict__["__all__"] = names
        module.__doc__ = f"Old import path kept for stored artifacts: {', '.join(names)}."


class MovedModuleFinder(importlib.abc.MetaPathFinder):
    """Resolves each old module path in `MOVED_TYPES`."""

    def find_spec(
        self, fullname: str, path: object = None, target: object = None
    ) -> importlib.machinery.ModuleSpec | None:
        types = MOVED_TYPES.get(fullname)
        if types is None:
            return None
        return importlib.machinery.ModuleSpec(fullname, _MovedTypesLoader(types))


def install() -> None:
    """Add the finder once (vtpose's package import does this)."""
    if not any(isinstance(finder, MovedModuleFinder) for finder in sys.meta_path):
        sys.meta_path.append(MovedModuleFinder())
