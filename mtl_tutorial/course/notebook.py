"""What a student copy's cells call: a quiz whose answers are sealed, and skipping the cells that need an
answer the student has not written yet (so that "Run all" goes on instead of failing)."""

from __future__ import annotations

import ast
import base64
import re
import zlib

USES_ANSWERS = re.compile(r"^# uses your answers: (.+)$")


def run_sealed(sealed: str, namespace: dict) -> object:
    """Run a sealed quiz cell (see `course.build.seal`) in the notebook's `namespace`; show its quiz."""
    tree = ast.parse(zlib.decompress(base64.b64decode(sealed)).decode("utf-8"))
    last = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) else None
    exec(compile(tree, "<the quiz>", "exec"), namespace)  # the lesson's own quiz cell, as it was written
    return eval(compile(ast.Expression(last.value), "<the quiz>", "eval"), namespace) if last else None


def undone(answer) -> bool:
    """True for an exercise's stub: a function (or a class with a method) that raises NotImplementedError."""
    members = vars(answer).values() if isinstance(answer, type) else [answer]
    functions = [member for member in members if hasattr(member, "__code__")]
    return any("NotImplementedError" in function.__code__.co_names for function in functions)


def missing_answers(names: list[str], namespace: dict) -> list[str]:
    """Which of `names` are not defined in `namespace`, or still the exercise's stub."""
    return [name for name in names if name not in namespace or undone(namespace[name])]


def skipping_transformer(namespace: dict):
    """An IPython input transformer: a cell starting `# uses your answers: a, b` is replaced by one line
    saying what is missing, when any of a, b is not written yet."""

    def transform(lines: list[str]) -> list[str]:
        found = USES_ANSWERS.match(lines[0].rstrip("\n")) if lines else None
        if not found:
            return lines
        names = [name.strip() for name in found.group(1).split(",") if name.strip()]
        missing = missing_answers(names, namespace)
        if not missing:
            return lines
        message = (
            f"Skipped: this cell uses your {', '.join(missing)}, not written yet. Do the exercise "
            f"that defines {' and '.join(missing)} (and run its cell), then run this cell again."
        )
        return [f"print({message!r})\n"]

    transform.mtl_skips_cells = True
    return transform


def skip_cells_without_answers() -> None:
    """From now on, skip (saying why) each cell of this notebook that needs an answer not written yet."""
    from IPython import get_ipython

    shell = get_ipython()
    if shell is None:
        return
    transformers = shell.input_transformers_post
    if not any(getattr(transformer, "mtl_skips_cells", False) for transformer in transformers):
        transformers.append(skipping_transformer(shell.user_ns))
