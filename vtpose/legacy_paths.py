"""Old import paths of the types ZenML recorded for artifacts stored before the library was laid out by area.

ZenML stores each artifact's data type as an import path (`vtpose.reports.EvaluationReport`) and imports it when
the artifact is loaded, so a store written by an older vtpose names modules that have since moved. This finder
answers those names with the module's new home; nothing in vtpose imports an old path itself.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
from types import ModuleType

# Old module -> its new home, for every module whose types an existing store may name.
MOVED_MODULES = {
    "vtpose.reports": "vtpose.training.reports",
    "vtpose.variants": "vtpose.training.variants",
}


class _MovedModuleLoader(importlib.abc.Loader):
    def __init__(self, new_name: str) -> None:
        self.new_name = new_name

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        # The new module itself, so a type loaded by its old path is the same class.
        return importlib.import_module(self.new_name)

    def exec_module(self, module: ModuleType) -> None:
        """Nothing to run: the module was executed under its new name."""


class MovedModuleFinder(importlib.abc.MetaPathFinder):
    """Resolves each old path in `MOVED_MODULES` to its new module."""

    def find_spec(
        self, fullname: str, path: object = None, target: object = None
    ) -> importlib.machinery.ModuleSpec | None:
        new_name = MOVED_MODULES.get(fullname)
        if new_name is None:
            return None
        return importlib.machinery.ModuleSpec(fullname, _MovedModuleLoader(new_name))


def install() -> None:
    """Add the finder once (vtpose's package import does this)."""
    if not any(isinstance(finder, MovedModuleFinder) for finder in sys.meta_path):
        sys.meta_path.append(MovedModuleFinder())
