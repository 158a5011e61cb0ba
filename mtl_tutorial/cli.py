"""The command line: `mtl-tutorial train | evaluate | predict | export | data` (or `python -m mtl_tutorial`).
"""

from __future__ import annotations

import argparse
import dataclasses
import shlex
import sys
from pathlib import Path

from accelerate import PartialState

from .config import TrainConfig
from .data import SPLITS, DataError, download_tweeteval, load_task, write_tsv_folder
from .dependencies import MissingPackage
from .evaluate import evaluate_run, predict_run, results_table
from .runs import DEV_CURVES_FILE, save_dev_curves
from .train import fit

# The TrainConfig fields that `train` takes as options (--max-length for max_length, ...):
# those not marked option=False.
TRAIN_OPTIONS = tuple(item.name for item in dataclasses.fields(TrainConfig)
                      if item.metadata.get("option", True))
DATA_LOCATION = tuple(item.name for item in dataclasses.fields(TrainConfig) if item.metadata.get("location"))


def config_from_arguments(args) -> TrainConfig:
    """The TrainConfig that `mtl-tutorial train ...` asks for."""
    return TrainConfig(**{name: getattr(args, name) for name in TRAIN_OPTIONS})


def command_line(config: TrainConfig, out: str | Path) -> str:
    """The one `mtl-tutorial train` command that trains `config` again into `out`.

    Options at their default are left out, and so is where the data lives (the files are checksummed,
    the same anywhere).
    """
    defaults, words = TrainConfig(), ["mtl-tutorial", "train"]
    missing = [name for name, value in dataclasses.asdict(config).items()
               if name not in TRAIN_OPTIONS and value != getattr(defaults, name)]
    if missing:
        raise ValueError(f"`mtl-tutorial train` has no option for {', '.join(missing)}: "
                         "train this config from Python with fit()")
    for name in TRAIN_OPTIONS:
        value = getattr(config, name)
        if name in DATA_LOCATION or value == getattr(defaults, name):
            continue
        if isinstance(value, dict):
            value = [f"{key}={item}" for key, item in value.items()]
        words += [f"--{name.replace('_', '-')}", *(value if isinstance(value, list) else [str(value)])]
    return shlex.join(words + ["--out", str(out)])


def add_config_options(parser: argparse.ArgumentParser) -> None:
    """One option per TrainConfig field, with the field's default, help text, choices and type."""
    defaults = TrainConfig()
    for item in dataclasses.fields(TrainConfig):
        if item.name not in TRAIN_OPTIONS:
            continue
        flag, default = f"--{item.name.replace('_', '-')}", getattr(defaults, item.name)
        kind = str(item.type).split(" | ")[0]
        if kind.startswith("list"):
            parser.add_argument(flag, nargs="+", default=default, help=item.metadata["help"])
        elif kind.startswith("dict"):
            parser.add_argument(flag, nargs="+", type=name_and_number, action=NameValuePairs,
                                metavar="NAME=VALUE", default=default, help=item.metadata["help"])
        else:
            parser.add_argument(flag, type={"int": int, "float": float}.get(kind, str), default=default,
                                choices=item.metadata.get("choices"), help=item.metadata["help"])


def name_and_number(word: str) -> tuple[str, float]:
    """`emotion=0.76` -> ("emotion", 0.76)."""
    name, equals, number = word.rpartition("=")
    try:
        if name and equals:
            return name, float(number)
    except ValueError:
        pass
    raise argparse.ArgumentTypeError(f"{word!r} is not NAME=VALUE, e.g. emotion=0.76")


class NameValuePairs(argparse.Action):
    """Collects `NAME=VALUE` words into a dict: `--target-scores emotion=0.76 sentiment=0.69`."""

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, dict(values))


def train_command(args) -> None:
    from . import plots  # matplotlib only for the commands that draw

    config = config_from_arguments(args)
    run = fit(config, args.out, resume=args.resume)
    if run.history.empty or not PartialState().is_main_process:  # under torchrun, one process reports
        return
    save_dev_curves(args.out, plots.dev_curves(run.history, title=f"{' + '.join(config.tasks)} ({args.out})"))
    print(run.history.to_string(index=False, float_format="%.4f"))
    print()
    print(results_table(run.results).to_string(float_format="%.4f"))
    print(f"\nRun saved in {args.out} (history.csv, results.json, best/<task>/, {DEV_CURVES_FILE})")


def evaluate_command(args) -> None:
    print(evaluate_run(args.run, args.split).to_string(index=False, float_format="%.4f"))


def predict_command(args) -> None:
    texts = args.texts or [line for line in standard_input_lines() if line.strip()]
    if not texts:
        raise ValueError("no text to label: give tweets after the run folder, "
                         "or one per line on standard input")
    table = predict_run(args.run, texts, args.task, args.max_length)
    print(table.to_string(index=False, float_format="%.3f", na_rep=""))


def standard_input_lines() -> list[str]:
    """The lines of standard input, read as UTF-8; a line that is not UTF-8 is named."""
    if not hasattr(sys.stdin, "buffer"):  # a stream of text already (a test's, a notebook's)
        return [line.rstrip("\r\n") for line in sys.stdin]
    lines = []
    for number, raw in enumerate(sys.stdin.buffer, start=1):
        try:
            lines.append(raw.decode("utf-8").rstrip("\r\n"))
        except UnicodeDecodeError as error:
            raise ValueError(f"standard input, line {number}: not UTF-8 text (byte {raw[error.start]:#04x} "
                             f"at byte {error.start + 1} of the line); save it as UTF-8") from None
    return lines


def positive(kind):
    """An argparse type: a number of `kind` above 0."""
    def parse(word: str):
        value = kind(word)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be above 0, got {word}")
        return value
    parse.__name__ = kind.__name__
    return parse


def export_command(args) -> None:
    from .export import export_run  # huggingface_hub's model cards only for this command

    for task, folder in export_run(args.run, args.out, args.task, args.license).items():
        size = sum(path.stat().st_size for path in folder.iterdir()) / 2**20
        remote = ", trust_remote_code=True" if (folder / "modeling_mtl_tutorial.py").exists() else ""
        print(f"{task}: {folder} ({size:.1f} MiB); load it with "
              f"transformers.pipeline(\"text-classification\", model=\"{folder}\"{remote})")
    print("Publish a folder on the Hugging Face Hub (after `hf auth login`) with: "
          f"hf upload YOUR-NAME/mtl-tutorial-{task} {folder}")


def data_command(args) -> None:
    where = {"data_dir": args.data_dir, "cache_dir": args.cache_dir, "base_url": args.base_url}
    if args.action == "download":
        for task in args.tasks:
            root = download_tweeteval(task, args.cache_dir, args.base_url)
            sizes = load_task(task, cache_dir=args.cache_dir, base_url=args.base_url).sizes()
            print(f"{task}: {sizes} in {root}")
    else:
        for task in args.tasks:
            loaded = load_task(task, **where)
            folder = write_tsv_folder(loaded, Path(args.out) / loaded.name)
            print(f"{task}: wrote {folder} ({loaded.sizes()})")


def course_command(args) -> None:
    """Build a class's notebooks, or grade what the class handed in (needs the `[course]` extra)."""
    if args.action == "build":
        from .course.build import build_course

        out = build_course(args.out, args.lessons, archive=args.archive)
        print(f"wrote student/, instructor/, answer_key.md and README.md into {out}"
              + (" and student.zip (the student notebooks and the package's wheel)" if args.archive else ""))
        return
    from .course.grade import Limits, grade

    grades = grade(args.submissions, args.out, args.key, Limits(args.cell_seconds, args.notebook_seconds))
    students = len({grade.student for grade in grades})
    print(f"graded {students} students: {Path(args.out) / 'grades.csv'} and {Path(args.out) / 'feedback'}/")


def add_data_options(parser) -> None:
    """--data-dir, --cache-dir and --base-url, as the config describes them."""
    for item in dataclasses.fields(TrainConfig):
        if item.metadata.get("location"):
            parser.add_argument(f"--{item.name.replace('_', '-')}", help=item.metadata["help"])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mtl-tutorial",
                                     description="Multi-task fine-tuning of one encoder on tweet tasks.")
    commands = parser.add_subparsers(dest="command", required=True)
    defaults = TrainConfig()

    train = commands.add_parser("train", help="train one encoder on one or more tasks")
    add_config_options(train)
    train.add_argument("--out", required=True, help="the run folder, e.g. runs/quick")
    train.add_argument("--resume", action="store_true",
                       help="continue the run in --out from its last finished epoch")
    train.set_defaults(handler=train_command)

    evaluate = commands.add_parser("evaluate", help="score a run's best checkpoints on a split")
    evaluate.add_argument("run")
    evaluate.add_argument("--split", choices=SPLITS, default="test")
    evaluate.set_defaults(handler=evaluate_command)

    predict = commands.add_parser("predict", help="label tweets with a run (every head, or --task)")
    predict.add_argument("run", help="a run folder or a saved model folder")
    predict.add_argument("texts", nargs="*", help="tweets to label (default: one per line on standard input)")
    predict.add_argument("--task")
    predict.add_argument("--max-length", type=positive(int), default=defaults.max_length)
    predict.set_defaults(handler=predict_command)

    export = commands.add_parser("export", help="each task's best checkpoint as a Hugging Face model folder "
                                                "that transformers.pipeline loads, with a model card")
    export.add_argument("run")
    export.add_argument("--out", required=True, help="the folder to write <task>/ into")
    export.add_argument("--task", nargs="+", help="only these tasks (default: every task of the run)")
    export.add_argument("--license", help="the model card's licence id (default: TweetEval's terms, 'other')")
    export.set_defaults(handler=export_command)

    data = commands.add_parser("data",
                               help="download TweetEval tasks, or convert them to the course's TSV format")
    data.add_argument("action", choices=("download", "convert"))
    data.add_argument("tasks", nargs="+")
    data.add_argument("--out", default="data", help="for convert: the folder to write <task>/ into")
    add_data_options(data)
    data.set_defaults(handler=data_command)

    course = commands.add_parser("course", help="teach a class: build student copies, grade submissions")
    course_actions = course.add_subparsers(dest="action", required=True)
    build = course_actions.add_parser("build", help="student and instructor notebooks, answer key, README")
    build.add_argument("--out", required=True)
    build.add_argument("--lessons", default=str(Path(__file__).resolve().parents[1] / "notebooks"),
                       help="the folder of the lessons' .py sources (default: this repository's notebooks/)")
    build.add_argument("--archive", action="store_true",
                       help="also write student.zip: the student notebooks and the package's wheel")
    grading = course_actions.add_parser("grade", help="run and check submitted notebooks (runs their code)")
    grading.add_argument("submissions", nargs="+", help="notebooks, or folders of them (one per student)")
    grading.add_argument("--out", required=True)
    grading.add_argument("--key", help="the answer_key.json of a build (default: this repository's lessons)")
    grading.add_argument("--cell-seconds", type=positive(float), default=120.0,
                         help="the limit per cell and per check")
    grading.add_argument("--notebook-seconds", type=positive(float), default=1200.0,
                         help="the limit per notebook")
    for action in (build, grading):
        action.set_defaults(handler=course_command)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and args.command == "predict" and not any(word.startswith("-") for word in extra):
        args.texts += extra  # tweets written after an option: `predict RUN --task emotion "a tweet"`
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        args.handler(args)
    except KeyboardInterrupt:
        kept = (f"; {args.out} keeps every finished epoch: continue it with the same command and --resume"
                if args.command == "train" else "")
        print(f"mtl-tutorial {args.command}: interrupted{kept}", file=sys.stderr)
        return 130
    except (DataError, MissingPackage, ValueError, KeyError, OSError) as error:
        print(f"mtl-tutorial {args.command}: error: {file_in_the_way(error) or message_of(error)}",
              file=sys.stderr)
        return 2
    return 0


def file_in_the_way(error: Exception) -> str | None:
    """For an error caused by a file where a folder must go (`--out notes.txt/run`): say so."""
    if isinstance(error, FileExistsError | NotADirectoryError) and error.filename:
        for path in (Path(error.filename), *Path(error.filename).parents):
            if path.is_file():
                return f"{path} is a file, not a folder"
    return None


def message_of(error: Exception) -> str:
    """The error's words; a KeyError's without the quotes that str() puts around them."""
    return str(error.args[0]) if isinstance(error, KeyError) and error.args else str(error)
