"""The process in which the package's checks meet a student's answer, apart from the student's notebook.

`python -m mtl_tutorial.course.checker FD` reads a job from stdin, {"token", "exercises": [{"id", "check",
"answer", "program"}]}, and for each exercise writes one JSON line to file descriptor FD: the verdict of
the package's own check, as imported here before any student code ran. The token proves a line came from
this code; tampering with the package's modules or the builtins during a check voids its verdict.
"""

from __future__ import annotations

import builtins
import json
import os
import sys


def snapshot() -> dict[str, dict]:
    """What every loaded mtl_tutorial module and the builtins hold, by identity."""
    modules = {name: module for name, module in sys.modules.items() if name.startswith("mtl_tutorial")}
    return {name: dict(vars(module)) for name, module in {**modules, "builtins": builtins}.items()}


def changed(before: dict[str, dict]) -> list[str]:
    """The names of `before` that no longer hold the very same object."""
    names = []
    for module, contents in before.items():
        now = vars(sys.modules[module]) if module != "builtins" else vars(builtins)
        names += [f"{module}.{name}" for name, value in contents.items() if now.get(name) is not value]
    return names


def check_one(exercise: dict, checks: dict, verdict_class: type, words) -> dict:
    """Define the student's answer in a fresh namespace, run the package's check on it, read its verdict."""
    namespace = {"__name__": "__answer__"}
    try:
        exec(compile(exercise["program"], "<your answer>", "exec"), namespace)
    except Exception as error:  # the answer's own cell failed: that is its verdict
        return {"passed": False, "message": f"defining your answer raised {type(error).__name__}: {error}"}
    if exercise["answer"] not in namespace:
        return {"passed": False, "message": f"your notebook does not define {exercise['answer']}"}
    before = snapshot()
    try:
        verdict = checks[exercise["check"]](namespace[exercise["answer"]])
    except Exception as error:  # an answer so far off that the check itself could not go on
        return {
            "passed": False,
            "message": f"the check could not run your answer: {type(error).__name__}: {error}",
        }
    tampered = changed(before)
    if tampered:
        return {
            "passed": False,
            "message": "your code changed the package or Python's builtins while it was "
            f"being checked ({', '.join(tampered[:3])}): no verdict",
        }
    if type(verdict) is not verdict_class or verdict.passed is not True and verdict.passed is not False:
        return {"passed": False, "message": "the check gave no verdict of its own: no points"}
    return {"passed": verdict.passed, "message": str(words(verdict))}


def main() -> None:
    results = os.fdopen(int(sys.argv[1]), "w", encoding="utf-8")
    job = json.loads(sys.stdin.read())
    from mtl_tutorial import exercises  # imported before any student code runs, and kept
    from mtl_tutorial.exercises.verdicts import feedback

    verdict_class, write, dumps = exercises.Verdict, results.write, json.dumps
    checks = {item["check"]: getattr(exercises, item["check"]) for item in job["exercises"]}
    token = job.pop("token")
    for exercise in job["exercises"]:
        outcome = check_one(exercise, checks, verdict_class, feedback)
        write(dumps({"token": token, "id": exercise["id"], **outcome}) + "\n")
        results.flush()


if __name__ == "__main__":
    main()
