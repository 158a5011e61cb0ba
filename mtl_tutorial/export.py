"""After training, sharing: each task's best checkpoint as a standard Hugging Face classifier.

`export_run(run, out)` writes `out/<task>/` per task: weights, config.json (the task's label names),
the tokenizer and a model card (README.md), which `pipeline("text-classification", model=...)` loads.
"""

from __future__ import annotations

import copy
import importlib.util
import shutil
from pathlib import Path

from huggingface_hub import EvalResult, ModelCard, ModelCardData
from transformers import AutoModelForSequenceClassification

from .config import TrainConfig
from .data import TWEETEVAL_TASKS
from .files import staged_folder
from .lessons import REPOSITORY
from .model import PACKAGED_ENCODER, ClassificationHead, MultiTaskModel
from .runs import is_finished, load_best, load_config, open_run, run_task_names
from .sharing import sharing_of

REMOTE_CODE = Path(__file__).with_name("remote_code") / "modeling_mtl_tutorial.py"
REMOTE_CLASS = "PooledEncoderForSequenceClassification"
PACKAGED_BASE_MODEL = "sentence-transformers/all-MiniLM-L6-v2"  # what the packaged MiniLM is
TWEETEVAL_HUB_ID = "cardiffnlp/tweet_eval"
TWEETEVAL_LICENCE = (
    "TweetEval is released without any restrictions but restrictions may apply to individual tasks (which "
    "are derived from existing datasets) or Twitter (main data source). We refer users to the original "
    "licenses accompanying each dataset and Twitter regulations.")
TWEETEVAL_CITATION = """@inproceedings{barbieri2020tweeteval,
  title={{TweetEval:Unified Benchmark and Comparative Evaluation for Tweet Classification}},
  author={Barbieri, Francesco and Camacho-Collados, Jose and Espinosa-Anke, Luis and Neves, Leonardo},
  booktitle={Proceedings of Findings of EMNLP},
  year={2020}
}"""
TWEETEVAL_SOURCES = {  # the SemEval task each TweetEval task's tweets come from (cite it too)
    "emotion": "SemEval-2018 Task 1: Affect in Tweets (Mohammad et al., 2018)",
    "sentiment": "SemEval-2017 Task 4: Sentiment Analysis in Twitter, subtask A (Rosenthal et al., 2017)",
    "irony": "SemEval-2018 Task 3: Irony Detection in English Tweets (Van Hee et al., 2018)",
    "hate": "SemEval-2019 Task 5: HatEval, hate speech against immigrants and women (Basile et al., 2019)",
    "offensive": "SemEval-2019 Task 6: OffensEval, offensive language (Zampieri et al., 2019)",
    "emoji": "SemEval-2018 Task 2: Multilingual Emoji Prediction (Barbieri et al., 2018)",
    "stance": "SemEval-2016 Task 6: Detecting Stance in Tweets (Mohammad et al., 2016)",
}
METRIC_TYPES = {"macro-F1": "f1", "macro-recall": "recall"}  # the hub's names; others are F1 of some classes


# ---------------------------------------------------------------------------------------------
# One task's encoder and head as one standard classifier
# ---------------------------------------------------------------------------------------------


def weights_of(module, prefix: str, leave_out: str | None = None) -> dict:
    return {f"{prefix}{name}": tensor for name, tensor in module.state_dict().items()
            if leave_out is None or not name.startswith(leave_out)}


def bert_weights(encoder, head: ClassificationHead) -> dict:
    """BertForSequenceClassification is first token -> pooler (dense, tanh) -> dropout -> classifier:
    exactly our head on the first token, with the head's dense layer as BERT's pooler."""
    return {**weights_of(encoder, "bert.", leave_out="pooler."),
            **weights_of(head.dense, "bert.pooler.dense."), **weights_of(head.out, "classifier.")}


def roberta_weights(encoder, head: ClassificationHead) -> dict:
    """RobertaForSequenceClassification has no pooler; its head is first token -> dropout -> dense -> tanh ->
    dropout -> out_proj: at inference exactly our head on the first token."""
    return {**weights_of(encoder, "roberta.", leave_out="pooler."),
            **weights_of(head.dense, "classifier.dense."), **weights_of(head.out, "classifier.out_proj.")}


# Encoder families whose own ...ForSequenceClassification equals first-token ("cls") pooling + our head.
NATIVE_CLASSIFIERS = {"bert": bert_weights, "roberta": roberta_weights}


def is_native(model_type: str, pooling: str) -> bool:
    """True when transformers' own class reproduces this pooling and head, so no custom code is needed."""
    return pooling == "cls" and model_type in NATIVE_CLASSIFIERS


def remote_code():
    """modeling_mtl_tutorial.py, loaded from the very file that is copied into the export."""
    spec = importlib.util.spec_from_file_location(REMOTE_CODE.stem, REMOTE_CODE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def encoder_settings(config) -> dict:
    """The encoder's config as the export's config.json nests it: what differs from the defaults, and no
    local path."""
    return {key: value for key, value in config.to_diff_dict().items()
            if key not in ("_name_or_path", "transformers_version", "architectures")}


def task_encoder(model: MultiTaskModel, task: str):
    """The plain transformers encoder that `task`'s head reads: with hard sharing, the one shared encoder;
    with soft sharing, the task's own copy; with LoRA, a copy with the task's adapter merged into its weights
    (W + (alpha / r) B A, PEFT's `merge_and_unload`), so no PEFT is needed to load the export."""
    sharing = sharing_of(model)
    if sharing == "soft":
        return model.own_encoder(task)
    if sharing == "lora":
        return copy.deepcopy(model.encoder).merge_and_unload(adapter_names=[task])
    return model.encoder


def standard_classifier(model: MultiTaskModel, task: str):
    """`task`'s encoder, pooling and head as one `...ForSequenceClassification` with the task's label
    names: the encoder family's own class where it is exact (NATIVE_CLASSIFIERS), else the shipped code's."""
    encoder, head, labels = task_encoder(model, task), model.heads[task], model.task_labels[task]
    label_names = {"id2label": dict(enumerate(labels)),
                   "label2id": {name: index for index, name in enumerate(labels)}}
    if is_native(encoder.config.model_type, model.pooling):
        config = copy.deepcopy(encoder.config)
        config.update({**label_names, "classifier_dropout": head.dropout.p})
        classifier = AutoModelForSequenceClassification.from_config(config)
        weights = NATIVE_CLASSIFIERS[config.model_type](encoder, head)
    else:
        code = remote_code()
        auto_map = {"AutoConfig": f"{REMOTE_CODE.stem}.{code.PooledEncoderConfig.__name__}",
                    "AutoModelForSequenceClassification": f"{REMOTE_CODE.stem}.{REMOTE_CLASS}"}
        config = code.PooledEncoderConfig(encoder=encoder_settings(encoder.config), pooling=model.pooling,
                                          head_dropout=head.dropout.p, auto_map=auto_map, **label_names)
        classifier = getattr(code, REMOTE_CLASS)(config)
        weights = {**weights_of(encoder, "encoder."), **weights_of(head, "head.")}
    classifier.load_state_dict(weights, strict=True)  # every weight placed, none left at random
    return classifier.eval()


# ---------------------------------------------------------------------------------------------
# The model card
# ---------------------------------------------------------------------------------------------


def base_model_id(config: TrainConfig) -> str | None:
    """The hub id of the encoder the run started from (None for a local folder, which has none)."""
    if config.model in (None, "", PACKAGED_ENCODER):
        return PACKAGED_BASE_MODEL
    return None if Path(config.model).exists() else config.model


def model_card(config: TrainConfig, task: str, labels: list[str], result: dict, native: bool,
               license: str | None = None) -> ModelCard:
    """A model card for `task`'s exported classifier, from the run's settings and test results."""
    tweeteval = task in TWEETEVAL_TASKS
    metric, test, baseline = result["official_metric"], result["test"], result["test_majority_baseline"]
    base_model = base_model_id(config)
    evaluation = EvalResult(
        task_type="text-classification", dataset_type=TWEETEVAL_HUB_ID if tweeteval else task,
        dataset_name=f"TweetEval {task}" if tweeteval else task, dataset_config=task if tweeteval else None,
        dataset_split="test", metric_type=METRIC_TYPES.get(metric, "f1"), metric_name=metric,
        metric_value=round(test["official"], 4))
    tweeteval_licence = {"license": "other", "license_name": "tweeteval", "license_link":
                         "https://github.com/cardiffnlp/tweeteval#license"} if tweeteval else {}
    data = ModelCardData(
        language="en", library_name="transformers", pipeline_tag="text-classification",
        tags=["text-classification", "tweets", "multi-task-learning", "mtl-tutorial"],
        base_model=base_model, datasets=[TWEETEVAL_HUB_ID] if tweeteval else None,
        model_name=f"mtl-tutorial-{task}", eval_results=[evaluation],
        **({"license": license} if license else tweeteval_licence))
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n"
                     + card_text(config, task, labels, result, native, base_model, tweeteval, baseline))


def card_text(config, task, labels, result, native, base_model, tweeteval, baseline) -> str:
    metric, dev, test = result["official_metric"], result["dev"], result["test"]
    examples = result["test_examples"]
    others = [name for name in result.get("run_tasks", []) if name != task]
    encoder = base_model or config.model
    sharing = {"hard": "one encoder shared by every task (hard parameter sharing), one head per task",
               "lora": f"one frozen encoder, one LoRA adapter per task (merged here into {task}'s copy of "
                       "the encoder's weights) and one head per task",
               "soft": "each task its own copy of the encoder, tied to the others by an L2 penalty (soft "
                       "sharing), and its own head"}[config.sharing]
    shared = (f"Its encoder was trained together with {', '.join(others)}: {sharing}. This folder holds the "
              f"encoder as it was at {task}'s best dev epoch, with {task}'s head." if others else
              "It was trained on this task alone (a single-task run).")
    loading = ("It is transformers' own `...ForSequenceClassification` (first-token pooling): no custom code."
               if native else
               f"Its pooling ({config.pooling}) has no class in transformers, so the folder ships "
               f"`{REMOTE_CODE.name}`, which `trust_remote_code=True` runs: read it before you load the "
               "model (one short file: the encoder, the pooling, a dense-tanh-linear head).")
    trust = "" if native else ", trust_remote_code=True"
    settings = {"encoder": f"`{encoder}`", "pooling": config.pooling, "strategy": config.strategy,
                "sampler": config.sampler if config.strategy == "sample" else config.combine or "equal",
                "epochs": config.epochs, "best epoch (by dev score)": result["best_epoch"],
                "batch size": config.batch_size, "learning rate": config.learning_rate,
                "max length (tokens)": config.max_length, "seed": config.seed,
                "training tweets per task": training_size(config), "mixed precision": config.mixed_precision}
    settings_rows = "\n".join(f"| {name} | {value} |" for name, value in settings.items())
    source = (f"TweetEval's `{task}` task, whose tweets come from "
              f"{TWEETEVAL_SOURCES['stance' if task.startswith('stance_') else task]}."
              if tweeteval else f"The user's own task `{task}`; its licence and citation are its owner's.")
    licence = (f"Data terms (TweetEval's README): \"{TWEETEVAL_LICENCE}\" The base model's own licence "
               "applies to the weights it contributed." if tweeteval else
               "The data's and the base model's licences apply; this card does not know them.")
    citation = (f"Cite TweetEval and the task's source paper ({TWEETEVAL_SOURCES.get(task.split('_')[0])}):"
                f"\n\n```bibtex\n{TWEETEVAL_CITATION}\n```" if tweeteval else "See the data's owner.")
    return f"""# mtl-tutorial: {task}

A tweet classifier for **{task}** ({', '.join(labels)}), trained with
[mtl-tutorial](https://github.com/{REPOSITORY}) and exported by `mtl-tutorial export`. {shared}

{loading}

```python
from transformers import pipeline
classify = pipeline("text-classification", model="PATH_OR_HUB_ID"{trust}, top_k=None)
classify("i can't believe it's snowing again", truncation=True, max_length={config.max_length})
```

## Results

| split | {metric} | accuracy | majority-class baseline ({metric}) | tweets |
|---|---|---|---|---|
| dev (best epoch {result['best_epoch']}) | {dev['official']:.4f} | {dev['accuracy']:.4f} | | |
| test | {test['official']:.4f} | {test['accuracy']:.4f} | {baseline['official']:.4f} | {examples} |

## Training

| setting | value |
|---|---|
{settings_rows}

## Data

{source}

## Intended use and limits

For teaching and research on English tweets: label a tweet with one of {', '.join(labels)}. It learned from
{training_size(config)} training tweets per task, so expect it to miss what those tweets did not show (other
languages, other platforms, later slang and events), and to repeat their annotators' and sampling biases.
Do not use it to make decisions about people. Texts longer than {config.max_length} tokens were cut in
training: pass `truncation=True, max_length={config.max_length}` to the pipeline.

## Licence

{licence}

## Citation

{citation}
"""


def training_size(config: TrainConfig) -> str:
    if config.max_train_examples and config.train_fraction is None:
        return f"at most {config.max_train_examples}"
    if config.train_fraction is not None:
        return f"{config.train_fraction:.1%} (at most {config.max_train_examples or 'all'})"
    return "all"


# ---------------------------------------------------------------------------------------------
# A whole run
# ---------------------------------------------------------------------------------------------


def export_task(run: str | Path, task: str, folder: str | Path, license: str | None = None) -> Path:
    """Write `task`'s best checkpoint of `run` as a standard classifier folder, all or nothing."""
    model, tokenizer = load_best(run, task)
    config, result = load_config(run), dict(open_run(run).results[task])
    result["run_tasks"] = model.tasks
    classifier = standard_classifier(model, task)
    native = is_native(classifier.config.model_type, model.pooling)
    tokenizer.model_max_length = config.max_length  # so that truncation=True cuts where training did
    with staged_folder(folder) as staging:
        classifier.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        if not native:
            shutil.copyfile(REMOTE_CODE, staging / REMOTE_CODE.name)
        model_card(config, task, model.task_labels[task], result, native, license).save(staging / "README.md")
    return Path(folder)


def export_run(run: str | Path, out: str | Path, tasks: list[str] | None = None,
               license: str | None = None) -> dict[str, Path]:
    """Export each task's best checkpoint of a finished run to `out/<task>/`: {task: folder}."""
    run, out = Path(run), Path(out)
    load_config(run)  # a folder that is no run at all is named as such
    if not is_finished(run):
        raise OSError(f"{run} is not a finished run (it has no test scores yet): finish it with "
                      "`mtl-tutorial train ... --resume` first")
    names = run_task_names(run)
    unknown = sorted(set(tasks or []) - set(names))
    if unknown:
        raise KeyError(f"run {run} has no task {unknown[0]!r}; its tasks are {names}")
    taken = [out / name for name in tasks or names if (out / name).exists()]
    if taken:
        raise FileExistsError(f"{taken[0]} already exists: choose another --out, or remove it first")
    return {name: export_task(run, name, out / name, license) for name in tasks or names}
