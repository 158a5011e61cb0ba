"""The optional packages some settings need, checked before a run starts and named in one line.

UPGrad solves a small quadratic program with `quadprog` (through `qpsolvers`); a pip that misses an extra
installs torchjd without them. Logging to TensorBoard needs `tensorboard` (the [tracking] extra). A run
that needs a missing package stops before its first step and says which command installs it, instead of
failing later in a traceback.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.util import find_spec


@dataclass(frozen=True)
class Requirement:
    """Setting `setting` = `value` needs the importable `modules`; `install` is the command that adds them."""

    setting: str
    value: str
    modules: tuple[str, ...]
    install: str


REQUIREMENTS = (
    Requirement("combine", "upgrad", ("numpy", "qpsolvers", "quadprog"),
                'pip install "torchjd[quadprog-projector]"'),
    Requirement("report_to", "tensorboard", ("tensorboard",), "pip install tensorboard"),
)


class MissingPackage(ImportError):
    """A setting's package is not installed. Notebooks show only its message, without a traceback."""

    def _render_traceback_(self) -> list[str]:  # IPython calls this instead of printing the traceback
        return [f"MissingPackage: {self}"]


def missing_modules(modules) -> list[str]:
    """The names among `modules` that cannot be imported here."""
    missing = []
    for name in modules:
        try:
            found = find_spec(name) is not None
        except (ImportError, ValueError):  # a module set to None in sys.modules, or one without a spec
            found = False
        if not found:
            missing.append(name)
    return missing


def check_requirements(settings) -> None:
    """Raise MissingPackage, naming the packages and the install command, if a chosen setting needs them."""
    for requirement in REQUIREMENTS:
        if getattr(settings, requirement.setting, None) == requirement.value:
            missing = missing_modules(requirement.modules)
            if missing:
                raise MissingPackage(f"{requirement.setting}={requirement.value!r} needs "
                                     f"{', '.join(missing)}, which is not installed: run  "
                                     f"{requirement.install}")
