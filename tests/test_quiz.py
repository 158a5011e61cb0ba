"""The lessons' quiz: as objects (choose, press Check, read the verdict) and inside a real Jupyter kernel."""

import json
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from mtl_tutorial import widgets

REPO = Path(__file__).resolve().parents[1]


def questions():
    return [
        widgets.Question(
            "Which task has more training tweets?",
            ["emotion", "sentiment"],
            "sentiment",
            "45,615 sentiment tweets against 3,257 emotion tweets.",
        ),
        widgets.Question(
            "How is emotion scored?",
            ["accuracy", "macro-F1", "macro-recall"],
            "macro-F1",
            "Every label counts the same, however rare.",
        ),
    ]


def test_a_quiz_marks_the_choice_and_explains_only_when_asked():
    quiz = widgets.quiz(questions())
    first, second = quiz.items
    assert [item.choice.options for item in quiz.items] == [
        ("emotion", "sentiment"),
        ("accuracy", "macro-F1", "macro-recall"),
    ]
    assert first.choice.value is None and first.feedback.value == ""  # nothing revealed before Check
    first.choice.value = "emotion"
    assert first.feedback.value == ""  # choosing alone reveals nothing
    first.button.click()
    assert "Not quite: you chose 'emotion', the answer is 'sentiment'" in first.feedback.value
    assert "45,615 sentiment tweets" in first.feedback.value
    first.choice.value = "sentiment"
    assert first.reveal() == "✅ Right. 45,615 sentiment tweets against 3,257 emotion tweets."
    assert "✅ Right." in first.feedback.value
    second.button.click()  # no choice made: the answer is shown
    assert "The answer is: macro-F1. Every label counts the same" in second.feedback.value
    assert quiz.score() == "1 of 2 right"
    assert quiz.box.children == (first.box, second.box)


def test_a_question_refuses_an_answer_that_is_not_an_option():
    with pytest.raises(ValueError, match="answer .F1. is not one of"):
        widgets.Question("How is emotion scored?", ["accuracy", "macro-F1"], "F1", "")
    with pytest.raises(ValueError, match="two or more different options"):
        widgets.Question("Which?", ["a", "a"], "a", "")
    with pytest.raises(ValueError, match="at least one question"):
        widgets.quiz([])


def test_a_quiz_in_a_real_kernel_reveals_its_answers_when_the_button_is_clicked():
    cells = [
        f"import sys\nsys.path.insert(0, {str(REPO)!r})\nfrom mtl_tutorial import widgets",
        """quiz = widgets.quiz([
    widgets.Question('Which task has more training tweets?', ['emotion', 'sentiment'], 'sentiment',
                     '45,615 against 3,257.'),
    widgets.Question('How is emotion scored?', ['accuracy', 'macro-F1'], 'macro-F1', 'Labels count alike.'),
])
quiz""",
        """quiz.items[0].choice.value = 'emotion'
quiz.items[0].button.click()
print(quiz.items[0].feedback.value)""",
        """quiz.items[1].choice.value = 'macro-F1'
quiz.items[1].button.click()
print(quiz.items[1].feedback.value)
print(quiz.score())""",
    ]
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source) for source in cells])
    NotebookClient(notebook, timeout=120, kernel_name="python3", store_widget_state=True,
                   shutdown_kernel="immediate").execute()

    shown = notebook.cells[1].outputs[0]["data"]
    assert "application/vnd.jupyter.widget-view+json" in shown  # the quiz is displayed as a widget
    wrong, right = (cell.outputs[0]["text"] for cell in notebook.cells[2:4])
    assert "❌ Not quite: you chose 'emotion', the answer is 'sentiment'. 45,615 against 3,257." in wrong
    assert "✅ Right. Labels count alike." in right
    assert right.strip().splitlines()[-1] == "1 of 2 right"  # the first choice is still 'emotion'

    state = notebook.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    models = [model["state"] for model in state.values()]
    radios = [model for model in models if model.get("_model_name") == "RadioButtonsModel"]
    assert [radio["_options_labels"] for radio in radios] == [
        ["emotion", "sentiment"],
        ["accuracy", "macro-F1"],
    ]
    assert [radio["index"] for radio in radios] == [0, 1]  # the choices made in the kernel
    feedback = [
        model["value"]
        for model in models
        if model.get("_model_name") == "HTMLModel" and "Not quite" in model.get("value", "")
    ]
    assert len(feedback) == 1 and "the answer is 'sentiment'" in feedback[0]
    json.dumps(notebook)  # the executed notebook, widget state included, is plain JSON
