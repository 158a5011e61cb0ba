"""Teaching a class: student copies without solutions, grading of submissions, and what their cells call.

    sources    a lesson's exercises read from its .py: the marked solution cells, their checks and points
    build      `mtl-tutorial course build`: student and instructor notebooks, answer key, instructor's README
    grade      `mtl-tutorial course grade`: run each submission, check its answers apart from it, score them
    checker    the separate process in which the package's checks meet a student's answer
    notebook   what a student copy calls: a sealed quiz, and skipping cells whose answers are not done

`mtl.course.run_sealed` and `mtl.course.skip_cells_without_answers` need nothing beyond the lessons' own
packages; building and grading need the `[course]` extra (nbclient).
"""

from .notebook import run_sealed, skip_cells_without_answers, undone

__all__ = ["run_sealed", "skip_cells_without_answers", "undone"]
