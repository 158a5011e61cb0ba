"""The verdict framework of the exercises: a check runs a student's code and answers in words.

A check raises `Wrong` with what is wrong; `exercise` turns that into a `Verdict`; `call` runs the student's
function so that an error becomes words, never a traceback, and a stub still raising NotImplementedError a
verdict "not done yet". The helpers compare answers and name mistakes.
"""

from __future__ import annotations

import functools
import math
import traceback
from dataclasses import dataclass

import torch


@dataclass
class Verdict:
    """The answer of a check: did your code pass, and what is right or wrong with it, in words."""

    exercise: str
    passed: bool
    message: str
    done: bool = True  # False while the student's code is still the exercise's stub

    def __str__(self) -> str:
        return f"{self.mark}: {self.exercise}\n{self.message}"

    __repr__ = __str__

    def _repr_markdown_(self) -> str:
        symbol, words = self.mark.split(" ", 1)
        return f"{symbol} **{words.capitalize()}**: {self.exercise}\n\n{self.message}"

    @property
    def mark(self) -> str:
        return "✅ passed" if self.passed else "❌ not yet" if self.done else f"❌ {NOT_DONE}"


NOT_DONE = "not done yet"


class Wrong(Exception):
    """Raised inside a check when the student's code is wrong; its message becomes the verdict."""


class NotDone(Wrong):
    """Raised inside a check when the student's function is still the stub (it raises NotImplementedError)."""


def exercise(title: str):
    """Turn a check into one that returns a Verdict: its return value is the praise, a `Wrong` the diagnosis.

    The check runs on a copy of torch's random state: the seeds it sets leave the notebook's draws alone."""

    def decorate(check):
        @functools.wraps(check)
        def run(*args, **kwargs) -> Verdict:
            try:
                with torch.random.fork_rng(devices=[]):
                    return Verdict(title, True, check(*args, **kwargs))
            except NotDone as undone:
                return Verdict(title, False, str(undone), done=False)
            except Wrong as wrong:
                return Verdict(title, False, str(wrong))

        return run

    return decorate


HINTS = {  # words in an error message -> what the student probably did
    "out of bounds": "a label is larger than the number of logits: did you use another task's head?",
    "shapes cannot be multiplied": "a layer got a vector of the wrong size: check its sizes",
    "does not require grad": "the loss has no gradient: was it computed under torch.no_grad() or detached?",
    "has no attribute": "an object has no such attribute: check the name against the lesson's code",
}


def call(function, *args, **kwargs):
    """Run the student's `function`; if it raises, make the error a verdict that names it and its line."""
    try:
        return function(*args, **kwargs)
    except Exception as error:  # any error of the student's code becomes words, never a traceback
        message = f"your function raised {error.__class__.__name__}: {error}"
        if isinstance(error, NotImplementedError):
            raise NotDone(message + "\n(replace the `raise NotImplementedError` with your code)") from None
        message += where(error, function)
        hint = next((hint for words, hint in HINTS.items() if words in str(error)), None)
        raise Wrong(message + (f"\nHint: {hint}" if hint else "")) from None


def feedback(verdict: Verdict) -> str:
    """A verdict's words for a grade sheet, where no mark shows: its message, after "not done yet: " if so."""
    return verdict.message if verdict.done else f"{NOT_DONE}: {verdict.message}"


def where(error: Exception, function) -> str:
    """'(in your code, line N: `...`)': the last line of the student's own code in the error's traceback."""
    code = getattr(function, "__code__", None) or getattr(getattr(function, "__init__", None), "__code__", 0)
    frames = [frame for frame in traceback.extract_tb(error.__traceback__)
              if code and frame.filename == code.co_filename]
    if not frames or not frames[-1].line:
        return ""
    return f"\n(in your code, line {frames[-1].lineno}: `{frames[-1].line.strip()}`)"


def as_number(value, what: str = "your function") -> float:
    """A returned score or loss as a float: a Python number, a NumPy scalar or a one-element tensor."""
    if value is None:
        raise Wrong(f"{what} returned None: did you forget `return`?")
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise Wrong(f"{what} returned a tensor of shape {tuple(value.shape)}; it should give one number")
        return float(value.detach())
    try:
        return float(value)
    except (TypeError, ValueError):
        raise Wrong(f"{what} returned a {type(value).__name__}, not a number") from None


def as_tensor(value, what: str) -> torch.Tensor:
    if value is None:
        raise Wrong(f"{what} is None: did you forget `return`?")
    if not isinstance(value, torch.Tensor):
        raise Wrong(f"{what} is a {type(value).__name__}, not a torch tensor: make one with "
                    "torch.tensor(...)")
    return value


def close(a: torch.Tensor, b: torch.Tensor, atol: float = 1e-5) -> bool:
    return a.shape == b.shape and torch.allclose(a.float(), b.float(), atol=atol, rtol=1e-4)


def same_number(a: float, b: float) -> bool:
    return math.isclose(a, b, abs_tol=1e-6)


def name_the_mistake(answer, mistakes: list[tuple[object, str]], equal) -> str:
    """The explanation of the first typical wrong answer (value, explanation) that `answer` equals, or ""."""
    return next((": " + explanation for value, explanation in mistakes if equal(answer, value)), "")


def listed(numbers: dict[str, float], digits: int = 4) -> str:
    return ", ".join(f"{name} {value:.{digits}f}" for name, value in numbers.items())
