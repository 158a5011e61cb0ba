"""Every exercise check on real TweetEval data: one correct solution passes, typical wrong ones fail with the
mistake named in the message, and a student's function that raises gets a verdict, not a traceback."""

import dataclasses
from collections import Counter

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from sklearn.metrics import f1_score, precision_score, recall_score
from torch import nn
from transformers import get_linear_schedule_with_warmup

from mtl_tutorial import BatchStream, TrainConfig, build_model, encode_task, exercises, fit, task_schedule
from mtl_tutorial.batching import batches_per_pass
from mtl_tutorial.exercises.verdicts import feedback
from mtl_tutorial.model import sequence_representation
from mtl_tutorial.runs import load_run_tasks


@pytest.fixture(scope="module")
def data(tweeteval_dir):
    return str(tweeteval_dir)


def passes(verdict):
    assert verdict.passed, verdict.message
    return verdict


def fails(verdict, *words):
    assert not verdict.passed, f"a wrong solution passed: {verdict.message}"
    for word in words:
        assert word in verdict.message, f"{word!r} not in: {verdict.message}"
    return verdict


# ---------------------------------------------------------------------------------------------
# How a verdict looks, and a student's function that raises
# ---------------------------------------------------------------------------------------------


def not_written_yet(*args):
    raise NotImplementedError("pad the batch to its longest tweet")


def divides_by_zero(examples, pad_id):
    width = max(len(example["input_ids"]) for example in examples) / 0
    return width


def test_a_function_that_raises_gets_a_verdict_in_words(data):
    verdict = fails(
        exercises.check_collate(not_written_yet, data),
        "your function raised NotImplementedError: pad the batch to its longest tweet",
        "replace the `raise NotImplementedError` with your code",
    )
    wrong = fails(
        exercises.check_collate(divides_by_zero, data),
        "your function raised ZeroDivisionError: division by zero",
        "(in your code, line ",
        ': `width = max(len(example["input_ids"]) for example in examples) / 0`)',
    )
    assert str(verdict).startswith("❌ not done yet: Lesson 1, exercise 2") and repr(verdict) == str(verdict)
    assert verdict._repr_markdown_().startswith("❌ **Not done yet**: Lesson 1, exercise 2")
    assert feedback(verdict).startswith("not done yet: your function raised NotImplementedError")
    assert str(wrong).startswith("❌ not yet: Lesson 1, exercise 2") and feedback(wrong) == wrong.message
    assert wrong._repr_markdown_().startswith("❌ **Not yet**: Lesson 1, exercise 2")
    assert exercises.check_collate(collate, data)._repr_markdown_().startswith("✅ **Passed**")


# ---------------------------------------------------------------------------------------------
# Lesson 1
# ---------------------------------------------------------------------------------------------


def encode_tweets(tokenizer, texts, max_length):
    return tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]


def test_encode(data):
    passes(exercises.check_encode(encode_tweets, data))
    fails(
        exercises.check_encode(
            lambda t, texts, n: t(texts, padding="max_length", truncation=True, max_length=n)["input_ids"],
            data,
        ),
        "you padded at tokenisation time",
    )
    fails(exercises.check_encode(lambda t, texts, n: t(texts)["input_ids"], data), "more than max_length=24")
    fails(
        exercises.check_encode(lambda t, texts, n: t(texts, truncation=True, max_length=n), data),
        "the tokenizer's whole output",
    )
    fails(
        exercises.check_encode(
            lambda t, texts, n: t(texts, truncation=True, max_length=n, add_special_tokens=False)[
                "input_ids"
            ],
            data,
        ),
        "lack the markers [CLS] and [SEP]",
    )


def collate(examples, pad_id):
    width = max(len(example["input_ids"]) for example in examples)
    input_ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(examples), width), dtype=torch.long)
    for row, example in enumerate(examples):
        input_ids[row, : len(example["input_ids"])] = torch.tensor(example["input_ids"])
        attention_mask[row, : len(example["input_ids"])] = 1
    return {
        "input_ids": input_ids,
        "attention_mask": attention_mask,
        "labels": torch.tensor([example["label"] for example in examples]),
    }


def padded_to(width, pad_with_zero=False, left=False, mask_everything=False):
    def collate(examples, pad_id):
        pad = 0 if pad_with_zero else pad_id
        rows = [example["input_ids"] for example in examples]
        size = width or max(map(len, rows))
        ids = [([pad] * (size - len(r)) + r) if left else (r + [pad] * (size - len(r))) for r in rows]
        mask = [[1] * size if mask_everything else [int(i < len(r)) for i in range(size)] for r in rows]
        return {
            "input_ids": torch.tensor(ids),
            "attention_mask": torch.tensor(mask),
            "labels": torch.tensor([example["label"] for example in examples]),
        }

    return collate


def test_collate(data):
    passes(exercises.check_collate(collate, data))
    fails(
        exercises.check_collate(padded_to(64), data),
        "your batch is padded to 64, not to its longest tweet (30)",
    )
    fails(exercises.check_collate(padded_to(None, pad_with_zero=True), data), "not the pad id 1", "RoBERTa")
    fails(exercises.check_collate(padded_to(None, left=True), data), "you padded on the left")
    fails(exercises.check_collate(padded_to(None, mask_everything=True), data), "1 on the pad positions too")
    fails(
        exercises.check_collate(
            lambda examples, pad_id: {k: v.float() for k, v in collate(examples, pad_id).items()}, data
        ),
        "torch.long",
    )
    fails(
        exercises.check_collate(lambda examples, pad_id: {**collate(examples, pad_id), "labels": [0]}, data),
        "'labels' is a list, not a torch tensor",
    )


def majority_baseline(train_labels, test_labels, num_labels):
    commonest = pd.Series(train_labels).mode()[0]
    predictions = [commonest] * len(test_labels)
    return {
        "accuracy": float(np.mean(np.array(test_labels) == commonest)),
        "macro_f1": f1_score(test_labels, predictions, labels=list(range(num_labels)), average="macro"),
    }


def test_majority_baseline(data):
    verdict = passes(exercises.check_majority_baseline(majority_baseline, data))
    assert "always 'neutral' gets accuracy 0.483" in verdict.message

    def micro(train, test, n):
        answer = majority_baseline(train, test, n)
        return {**answer, "macro_f1": answer["accuracy"]}

    def weighted(train, test, n):
        commonest = pd.Series(train).mode()[0]
        return {
            **majority_baseline(train, test, n),
            "macro_f1": f1_score(test, [commonest] * len(test), average="weighted", zero_division=0),
        }

    fails(exercises.check_majority_baseline(micro, data), "that is the accuracy (= micro-F1)")
    fails(exercises.check_majority_baseline(weighted, data), "average='weighted'")
    fails(
        exercises.check_majority_baseline(lambda train, test, n: majority_baseline([0], test, n), data),
        "sentiment: your accuracy is 0.3233",
        "you predicted label 0 (negative)",
    )
    fails(
        exercises.check_majority_baseline(
            lambda train, test, n: {k: 100 * v for k, v in majority_baseline(train, test, n).items()}, data
        ),
        "not percents",
    )


def test_encode_names_every_other_mistake(data):
    fails(
        exercises.check_encode(
            lambda t, texts, n: t(texts, padding=True, truncation=True, max_length=n, return_tensors="pt")[
                "input_ids"
            ],
            data,
        ),
        "you returned a tensor of shape (64, 24)",
    )
    fails(
        exercises.check_encode(
            lambda t, texts, n: t(texts[1:], truncation=True, max_length=n)["input_ids"], data
        ),
        "you returned 63 sequences for 64 tweets",
    )
    fails(
        exercises.check_encode(
            lambda t, texts, n: t(texts[0], truncation=True, max_length=n)["input_ids"], data
        ),
        "not one list of ids per tweet",
    )
    fails(exercises.check_encode(lambda t, texts, n: None, data), "returned None")


def test_collate_names_every_other_mistake(data):
    def changed(**changes):
        return lambda examples, pad_id: {
            **collate(examples, pad_id),
            **{key: change(collate(examples, pad_id)) for key, change in changes.items()},
        }

    fails(
        exercises.check_collate(lambda examples, pad_id: tuple(collate(examples, pad_id).values()), data),
        "your collate returned a tuple",
    )
    fails(
        exercises.check_collate(
            lambda examples, pad_id: {"input_ids": collate(examples, pad_id)["input_ids"]}, data
        ),
        "your batch has no 'attention_mask', 'labels'",
    )
    for key, why in (("input_ids", "row number"), ("attention_mask", "yes (1) or no (0)"),
                     ("labels", "class numbers")):  # each tensor's own reason for holding integers
        as_floats = changed(**{key: lambda batch, key=key: batch[key].float()})
        fails(exercises.check_collate(as_floats, data), f"'{key}' holds torch.float32", why)
    fails(
        exercises.check_collate(changed(input_ids=lambda b: b["input_ids"].flatten()), data),
        "input_ids has shape",
    )
    fails(
        exercises.check_collate(changed(input_ids=lambda b: b["input_ids"][:, :-1]), data),
        "you cut tweets short",
    )
    fails(
        exercises.check_collate(changed(input_ids=lambda b: b["input_ids"].flip(0)), data),
        "row 0 does not start with its tweet's ids",
    )
    fails(
        exercises.check_collate(changed(attention_mask=lambda b: b["attention_mask"][:, :-1]), data),
        "attention_mask has shape",
    )
    fails(
        exercises.check_collate(changed(attention_mask=lambda b: 1 - b["attention_mask"]), data),
        "your attention mask is inverted",
    )
    fails(
        exercises.check_collate(changed(attention_mask=lambda b: b["attention_mask"].roll(1, 1)), data),
        "your attention mask is not 1 on tokens and 0 on pads",
    )
    fails(
        exercises.check_collate(changed(labels=lambda b: b["labels"].flip(0)), data),
        "(the examples' labels, in order)",
    )


def always(pick):
    """A baseline that always answers the label `pick(train_labels, test_labels)`."""

    def baseline(train_labels, test_labels, num_labels):
        label = pick(train_labels, test_labels)
        return {
            "accuracy": float(np.mean(np.array(test_labels) == label)),
            "macro_f1": f1_score(
                test_labels, [label] * len(test_labels), labels=list(range(num_labels)), average="macro"
            ),
        }

    return baseline


def test_majority_baseline_names_every_other_mistake(data):
    verdict = passes(exercises.check_majority_baseline(majority_baseline, data))
    assert "sentiment scored on its first 100 dev tweets: always 'neutral'" in verdict.message
    fails(
        exercises.check_majority_baseline(
            always(lambda train, test: Counter(train).most_common()[-1][0]), data
        ),
        "emotion: your accuracy",
        "you predicted the RAREST training label",
    )
    fails(
        exercises.check_majority_baseline(
            always(lambda train, test: Counter(test).most_common(1)[0][0]), data
        ),
        "sentiment scored on its first 100 dev tweets: your accuracy is 0.4400, it should be 0.3900",
        "the commonest label of the TEST set (positive)",
        "whose commonest label is neutral",
    )

    def one_label(train, test, n):
        commonest = Counter(train).most_common(1)[0][0]
        return {
            **majority_baseline(train, test, n),
            "macro_f1": f1_score(test, [commonest] * len(test), labels=[commonest], average="macro"),
        }

    fails(exercises.check_majority_baseline(one_label, data), "that is the F1 of the one label you predict")
    fails(
        exercises.check_majority_baseline(lambda train, test, n: 0.5, data), "return a dict with two numbers"
    )


# ---------------------------------------------------------------------------------------------
# Lesson 2
# ---------------------------------------------------------------------------------------------


def mean_pool(last_hidden_state, attention_mask):
    mask = attention_mask.unsqueeze(-1).float()
    return (last_hidden_state * mask).sum(1) / mask.sum(1)


def test_mean_pooling(data):
    passes(exercises.check_mean_pooling(mean_pool, data))
    fails(
        exercises.check_mean_pooling(lambda hidden, mask: hidden.mean(1), data),
        "your mean counts the pad tokens",
    )
    fails(
        exercises.check_mean_pooling(lambda hidden, mask: hidden.mean(-1), data), "over the hidden dimension"
    )
    fails(
        exercises.check_mean_pooling(
            lambda hidden, mask: (hidden * mask.unsqueeze(-1)).sum(1) / hidden.shape[1], data
        ),
        "divided by the batch's width",
    )
    fails(exercises.check_mean_pooling(lambda hidden, mask: hidden[:, 0], data), "first token's vector")


class Head(nn.Module):
    def __init__(self, hidden_size, num_labels, dropout=0.1):
        super().__init__()
        self.dense = nn.Linear(hidden_size, hidden_size)
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(hidden_size, num_labels)
        for layer in (self.dense, self.out):
            nn.init.normal_(layer.weight, mean=0.0, std=0.02)
            nn.init.zeros_(layer.bias)

    def forward(self, features):
        return self.out(self.dropout(torch.tanh(self.dense(features))))


class NoTanh(Head):
    def forward(self, features):
        return self.out(self.dropout(self.dense(features)))


class NoDropout(Head):
    def forward(self, features):
        return self.out(torch.tanh(self.dense(features)))


class DropoutOnInput(Head):
    def forward(self, features):
        return self.out(torch.tanh(self.dense(self.dropout(features))))


class DefaultInit(nn.Module):
    def __init__(self, hidden_size, num_labels, dropout=0.1):
        super().__init__()
        self.dense, self.dropout = nn.Linear(hidden_size, hidden_size), nn.Dropout(dropout)
        self.out = nn.Linear(hidden_size, num_labels)

    forward = Head.forward


class OneLayer(nn.Module):
    def __init__(self, hidden_size, num_labels, dropout=0.1):
        super().__init__()
        self.out = nn.Linear(hidden_size, num_labels)

    def forward(self, features):
        return self.out(features)


class ThreeLabels(Head):
    def __init__(self, hidden_size, num_labels, dropout=0.1):
        super().__init__(hidden_size, 3, dropout)


def test_head(data):
    passes(exercises.check_head(Head, data))
    fails(exercises.check_head(NoTanh, data), "you left out the tanh")
    fails(exercises.check_head(NoDropout, data), "your head has no dropout")
    fails(exercises.check_head(DropoutOnInput, data), "you apply dropout to the head's input")
    fails(exercises.check_head(DefaultInit, data), "N(0, 0.02)", "biases are not zero")
    fails(exercises.check_head(OneLayer, data), "your head has 1 linear layer; it needs two")
    fails(exercises.check_head(ThreeLabels, data), "gives 3 scores, but emotion has 4 labels")


def forward(self, input_ids, attention_mask, task):
    outputs = self.encoder(input_ids=input_ids, attention_mask=attention_mask)
    return self.heads[task](sequence_representation(outputs, attention_mask, self.pooling))


def test_forward(data):
    verdict = passes(exercises.check_forward(forward, data))
    assert "emotion -> (8, 4), sentiment -> (8, 3)" in verdict.message and "KeyError" in verdict.message

    def sentiment_head_always(self, input_ids, attention_mask, task):
        return forward(self, input_ids, attention_mask, "sentiment")

    def first_token(self, input_ids, attention_mask, task):
        outputs = self.encoder(input_ids=input_ids, attention_mask=attention_mask)
        return self.heads[task](outputs.last_hidden_state[:, 0])

    def without_mask(self, input_ids, attention_mask, task):
        outputs = self.encoder(input_ids=input_ids)
        return self.heads[task](sequence_representation(outputs, attention_mask, self.pooling))

    def any_task(self, input_ids, attention_mask, task):
        return forward(self, input_ids, attention_mask, task if task in self.heads else "emotion")

    fails(
        exercises.check_forward(sentiment_head_always, data),
        "you returned logits of shape (8, 3) but emotion has 4 labels: did you use the sentiment head?",
    )
    fails(exercises.check_forward(first_token, data), "you took the first token's vector")
    fails(exercises.check_forward(without_mask, data), "you did not pass the attention mask")
    fails(
        exercises.check_forward(lambda *args: forward(*args).softmax(-1), data), "you returned probabilities"
    )
    fails(exercises.check_forward(any_task, data), "no head for 'irony', yet your forward returned an answer")


def test_mean_pooling_names_every_other_mistake(data):
    fails(
        exercises.check_mean_pooling(lambda hidden, mask: hidden.mean((0, 1)), data),
        "you averaged over the whole batch too",
    )
    fails(
        exercises.check_mean_pooling(lambda hidden, mask: hidden * mask.unsqueeze(-1), data),
        "you did not average, there is still one vector per token",
    )
    fails(
        exercises.check_mean_pooling(lambda hidden, mask: (hidden * mask.unsqueeze(-1)).sum(1), data),
        "you summed the token vectors but did not divide",
    )


class ReluHead(Head):
    def forward(self, features):
        return self.out(self.dropout(torch.relu(self.dense(features))))


class SoftmaxHead(Head):
    def forward(self, features):
        return super().forward(features).softmax(-1)


class TanhAfterTheOutput(Head):
    def forward(self, features):
        return torch.tanh(self.out(self.dropout(self.dense(features))))


class TwoDropouts(Head):
    def forward(self, features):
        return self.out(self.dropout(self.dropout(torch.tanh(self.dense(features)))))


class Narrow(Head):
    def __init__(self, hidden_size, num_labels, dropout=0.1):
        super().__init__(hidden_size, num_labels, dropout)
        self.dense, self.out = nn.Linear(hidden_size, 128), nn.Linear(128, num_labels)


def test_head_names_every_other_mistake(data):
    fails(exercises.check_head(ReluHead, data), "you used ReLU", "RoBERTa's classification head")
    fails(exercises.check_head(SoftmaxHead, data), "your head returns probabilities (softmax)")
    fails(exercises.check_head(TanhAfterTheOutput, data), "you put the tanh after the output layer")
    fails(exercises.check_head(TwoDropouts, data), "apply dropout once")
    fails(exercises.check_head(Narrow, data), "your layers map [(384, 128), (128, 4)]")
    fails(exercises.check_head(lambda hidden, labels, dropout: "a head", data), "your class made a str")


def test_forward_names_every_other_mistake(data):
    def pooler(self, input_ids, attention_mask, task):
        return self.heads[task](
            self.encoder(input_ids=input_ids, attention_mask=attention_mask).pooler_output
        )

    def mean_with_pads(self, input_ids, attention_mask, task):
        outputs = self.encoder(input_ids=input_ids, attention_mask=attention_mask)
        return self.heads[task](outputs.last_hidden_state.mean(1))

    def no_such_attribute(self, input_ids, attention_mask, task):
        return self.head[task](self.encoder(input_ids=input_ids, attention_mask=attention_mask).pooler_output)

    def wrong_dimension(self, input_ids, attention_mask, task):
        outputs = self.encoder(input_ids=input_ids, attention_mask=attention_mask)
        return self.heads[task](outputs.last_hidden_state.mean(-1))

    fails(exercises.check_forward(pooler, data), "you used the encoder's pooler_output")
    fails(exercises.check_forward(mean_with_pads, data), "your mean includes the pad tokens")
    fails(
        exercises.check_forward(no_such_attribute, data),
        "has no attribute 'head'",
        "Hint: an object has no such attribute",
    )
    fails(exercises.check_forward(wrong_dimension, data), "Hint: a layer got a vector of the wrong size")


# ---------------------------------------------------------------------------------------------
# Lesson 3
# ---------------------------------------------------------------------------------------------


def temperature_probabilities(sizes, temperature):
    weights = {task: size ** (1 / temperature) for task, size in sizes.items()}
    return {task: weight / sum(weights.values()) for task, weight in weights.items()}


def test_temperature(data):
    verdict = passes(exercises.check_temperature(temperature_probabilities, data))
    assert "0.067 at T = 1" in verdict.message
    fails(
        exercises.check_temperature(lambda sizes, t: temperature_probabilities(sizes, 1 / t), data),
        "you raised the sizes to the power T = 2",
    )
    fails(
        exercises.check_temperature(lambda sizes, t: {k: v ** (1 / t) for k, v in sizes.items()}, data),
        "sum to",
        "divide each n_i^(1/T) by their total",
    )
    fails(
        exercises.check_temperature(lambda sizes, t: temperature_probabilities(sizes, 1.0), data),
        "do not change with T",
    )
    fails(
        exercises.check_temperature(
            lambda sizes, t: list(temperature_probabilities(sizes, t).values()), data
        ),
        "return a dict keyed by task name",
    )


def draws_per_epoch(sizes, batch_size, probabilities):
    steps = sum(-(-size // batch_size) for size in sizes.values())
    return {task: probabilities[task] * steps for task in sizes}


def test_draws_per_epoch(data):
    verdict = passes(exercises.check_draws_per_epoch(draws_per_epoch, data))
    assert "proportional: emotion 102 steps = 1.00 passes" in verdict.message
    fails(
        exercises.check_draws_per_epoch(
            lambda sizes, b, p: {t: p[t] * sum(s // b for s in sizes.values()) for t in sizes}, data
        ),
        "you rounded the number of batches down",
    )
    fails(
        exercises.check_draws_per_epoch(
            lambda sizes, b, p: {t: p[t] * -(-sizes[t] // b) for t in sizes}, data
        ),
        "ALL the tasks have batches together",
    )
    fails(
        exercises.check_draws_per_epoch(
            lambda sizes, b, p: {t: p[t] * sum(sizes.values()) for t in sizes}, data
        ),
        "you counted tweets",
    )


def draw_schedule(probabilities, steps, seed):
    generator = torch.Generator().manual_seed(seed)
    tasks = list(probabilities)
    draws = torch.multinomial(
        torch.tensor([probabilities[t] for t in tasks]), steps, replacement=True, generator=generator
    )
    return [tasks[i] for i in draws.tolist()]


def test_schedule(data):
    verdict = passes(exercises.check_schedule(draw_schedule, data))
    assert "the same schedule for the same seed" in verdict.message

    def unseeded(probabilities, steps, seed):  # the original tutorial's draw
        return list(np.random.choice(list(probabilities), size=steps, p=list(probabilities.values())))

    def global_seed(probabilities, steps, seed):
        torch.manual_seed(seed)
        tasks = list(probabilities)
        return [
            tasks[i]
            for i in torch.multinomial(torch.tensor(list(probabilities.values())), steps, True).tolist()
        ]

    def in_turn(probabilities, steps, seed):
        return [list(probabilities)[step % len(probabilities)] for step in range(steps)]

    fails(exercises.check_schedule(unseeded, data), "your draw is not seeded", "NumPy's global")
    fails(exercises.check_schedule(global_seed, data), "global torch generator")
    fails(exercises.check_schedule(in_turn, data), "you take the tasks in turn (round robin)")
    fails(
        exercises.check_schedule(lambda p, steps, seed: draw_schedule(p, steps, 0), data), "ignores the seed"
    )


def test_sampling_checks_name_every_other_mistake(data):
    fails(
        exercises.check_temperature(lambda sizes, t: {k: 1 / len(sizes) for k in sizes}, data),
        "T = 1 the probabilities",
        "your probabilities are uniform",
    )
    fails(exercises.check_temperature(lambda sizes, t: {"emotion": 1.0}, data), "expected one per task")
    fails(
        exercises.check_draws_per_epoch(lambda sizes, b, p: dict(p), data),
        "these are the probabilities; multiply them",
    )
    fails(
        exercises.check_draws_per_epoch(lambda sizes, b, p: {t: -(-sizes[t] // b) for t in sizes}, data),
        "proportional sampling: expect emotion 101.8",
        "that is each task's number of batches, whatever the sampler",
    )
    fails(
        exercises.check_schedule(lambda p, steps, seed: draw_schedule(p, steps - 1, seed), data),
        "asked for 2000 steps, your schedule has 1999",
    )
    fails(
        exercises.check_schedule(lambda p, steps, seed: torch.zeros(steps), data), "your schedule is a Tensor"
    )
    fails(exercises.check_schedule(lambda p, steps, seed: [0] * steps, data), "which are not task names")

    def uniform(probabilities, steps, seed):
        return draw_schedule({task: 1 / len(probabilities) for task in probabilities}, steps, seed)

    fails(exercises.check_schedule(uniform, data), "draw each step with the given probabilities")


# ---------------------------------------------------------------------------------------------
# Lesson 4
# ---------------------------------------------------------------------------------------------


def train_step(model, batch, task, optimizer, scheduler, max_grad_norm):
    logits = model(batch["input_ids"], batch["attention_mask"], task)
    loss = F.cross_entropy(logits, batch["labels"])
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad()
    return loss


def test_train_step(data):
    verdict = passes(exercises.check_train_step(train_step, data))
    assert "clipped from norm" in verdict.message and "BEFORE optimizer.step()" in verdict.message
    undone = fails(exercises.check_train_step(not_written_yet, data), "step 1 (", "NotImplementedError")
    assert not undone.done and feedback(undone).startswith("not done yet: step 1 (")

    def clip_after_step(model, batch, task, optimizer, scheduler, max_grad_norm):
        loss = F.cross_entropy(model(batch["input_ids"], batch["attention_mask"], task), batch["labels"])
        loss.backward()
        optimizer.step()
        torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)  # the original tutorial's order
        scheduler.step()
        optimizer.zero_grad()
        return loss

    def no_zero_grad(model, batch, task, optimizer, scheduler, max_grad_norm):
        loss = F.cross_entropy(model(batch["input_ids"], batch["attention_mask"], task), batch["labels"])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
        optimizer.step()
        scheduler.step()
        return loss

    def one_head(model, batch, task, optimizer, scheduler, max_grad_norm):
        return train_step(model, batch, "emotion", optimizer, scheduler, max_grad_norm)

    def schedule_first(model, batch, task, optimizer, scheduler, max_grad_norm):
        loss = F.cross_entropy(model(batch["input_ids"], batch["attention_mask"], task), batch["labels"])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
        scheduler.step()
        optimizer.step()
        optimizer.zero_grad()
        return loss

    def zero_grad_first(model, batch, task, optimizer, scheduler, max_grad_norm):
        optimizer.zero_grad()
        loss = F.cross_entropy(model(batch["input_ids"], batch["attention_mask"], task), batch["labels"])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
        optimizer.step()
        scheduler.step()
        return loss

    fails(
        exercises.check_train_step(clip_after_step, data),
        "your clipping runs after optimizer.step(), so the step used the unclipped gradient",
    )
    fails(
        exercises.check_train_step(no_zero_grad, data),
        "step 2 (emotion batch)",
        "optimizer.zero_grad()",
        "sum of the sentiment and the emotion gradients",
    )
    fails(
        exercises.check_train_step(one_head, data),
        "your loss is that of the emotion head on a sentiment batch",
    )
    fails(exercises.check_train_step(schedule_first, data), "you stepped the schedule before the optimizer")
    fails(
        exercises.check_train_step(lambda *args: train_step(*args[:5], 1e9), data),
        "optimizer.step() used an unclipped gradient",
    )
    verdict = passes(exercises.check_train_step(zero_grad_first, data))
    assert "at the start of the step" in verdict.message
    fails(
        exercises.check_train_step(
            lambda model, batch, task, *rest: train_step(model, batch, "sentiment", *rest), data
        ),
        "step 2",
        "your function raised IndexError",
        "did you use another task's head?",
    )


def best_epochs(history):
    best_rows = history.loc[history.groupby("task")["dev_official"].idxmax()]
    return dict(zip(best_rows["task"], best_rows["epoch"]))


def test_the_recorded_history_is_a_real_run_whose_tasks_peak_apart():
    history = exercises.recorded_history()
    assert sorted(history["epoch"].unique()) == [1, 2, 3, 4, 5] and set(history["task"]) == {
        "emotion",
        "sentiment",
    }
    best = exercises.best_epochs_by_fit(history)
    assert best == {
        task: int(rows.loc[rows["dev_official"].idxmax(), "epoch"]) for task, rows in history.groupby("task")
    }
    assert len(set(best.values())) == 2 and 5 not in best.values()


def test_best_epochs(tiny_encoder_dir, tweeteval_dir, tmp_path):
    verdict = passes(exercises.check_best_epochs(best_epochs))
    assert "the recorded 5-epoch run" in verdict.message
    run = fit(
        TrainConfig(
            tasks=["emotion", "sentiment"],
            model=str(tiny_encoder_dir),
            epochs=2,
            max_train_examples=32,
            max_eval_examples=32,
            max_length=32,
            data_dir=str(tweeteval_dir),
        ),
        tmp_path / "run",
        progress=False,
    )
    assert "your run" in passes(exercises.check_best_epochs(best_epochs, run.history)).message

    def last(history):
        return {task: int(rows["epoch"].max()) for task, rows in history.groupby("task")}

    def lowest_loss(history):
        return {
            task: int(rows.loc[rows["dev_loss"].idxmin(), "epoch"]) for task, rows in history.groupby("task")
        }

    def same_for_all(history):
        epoch = int(history.groupby("epoch")["dev_official"].mean().idxmax())
        return {task: epoch for task in history["task"].unique()}

    def row_numbers(history):
        return {task: int(rows["dev_official"].idxmax()) for task, rows in history.groupby("task")}

    fails(exercises.check_best_epochs(last), "you took the last epoch")
    fails(exercises.check_best_epochs(same_for_all), "you picked one epoch for all the tasks")
    fails(exercises.check_best_epochs(row_numbers), "you returned row numbers of the table")
    fails(
        exercises.check_best_epochs(lowest_loss),
        "sentiment's best epoch is 2, you said 4",
        "the lowest dev LOSS",
    )


def test_a_hand_written_loop_gives_fits_loss_on_the_same_batches(tiny_encoder_dir, tweeteval_dir, tmp_path):
    config = TrainConfig(
        tasks=["emotion", "sentiment"],
        model=str(tiny_encoder_dir),
        epochs=1,
        max_train_examples=80,
        max_eval_examples=16,
        max_length=32,
        batch_size=16,
        learning_rate=1e-3,
        sampler="temperature",
        data_dir=str(tweeteval_dir),
    )

    def hand_loop(clear_gradients=True):
        torch.manual_seed(config.seed)
        tasks = load_run_tasks(config)
        model, tokenizer = build_model({name: task.label_names for name, task in tasks.items()}, config.model)
        encoded = {name: encode_task(tokenizer, task, config.max_length) for name, task in tasks.items()}
        streams = {
            name: BatchStream(splits["train"], config.batch_size, config.seed)
            for name, splits in encoded.items()
        }
        sizes = {name: len(encoded[name]["train"]) for name in tasks}
        steps = sum(batches_per_pass(size, config.batch_size) for size in sizes.values())
        optimizer = torch.optim.AdamW(
            model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay, fused=True
        )
        scheduler = get_linear_schedule_with_warmup(optimizer, int(config.warmup_ratio * steps), steps)
        torch.manual_seed(config.seed + 1)
        model.train()
        log = []
        for task in task_schedule(
            sizes, steps, config.sampler, config.seed, config.temperature, 1, config.epochs
        ):
            batch = next(streams[task])
            loss = F.cross_entropy(model(batch["input_ids"], batch["attention_mask"], task), batch["labels"])
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.max_grad_norm)
            optimizer.step()
            scheduler.step()
            if clear_gradients:
                optimizer.zero_grad()
            log.append({"task": task, "loss": loss.item(), "size": len(batch["labels"])})
        return log

    history = fit(config, tmp_path / "run", progress=False).history
    table = exercises.hand_loop_vs_fit(hand_loop(), history)
    assert list(table.index) == ["emotion", "sentiment"] and table["same"].all(), table
    assert list(table["tweets"]) == [80, 80] or table["tweets"].sum() == table["fit's tweets"].sum()
    assert table["difference"].abs().max() < 1e-5
    wrong = exercises.hand_loop_vs_fit(hand_loop(clear_gradients=False), history)
    assert not wrong["same"].all() and wrong["difference"].abs().max() > 1e-3, wrong
    with pytest.raises(ValueError, match="missing \\['size'\\]"):
        exercises.hand_loop_vs_fit([{"task": "emotion", "loss": 1.0}], history)
    with pytest.raises(ValueError, match="no row for task 'irony' in epoch 1"):
        exercises.hand_loop_vs_fit([{"task": "irony", "loss": 1.0, "size": 4}], history)


def a_step(order, reduction="mean"):
    """A training step doing `order`'s calls in that order (forward and loss always come first)."""

    def step(model, batch, task, optimizer, scheduler, max_grad_norm):
        loss = F.cross_entropy(
            model(batch["input_ids"], batch["attention_mask"], task), batch["labels"], reduction=reduction
        )
        calls = {
            "backward": loss.backward,
            "zero_grad": optimizer.zero_grad,
            "zero_grad to zeros": lambda: optimizer.zero_grad(set_to_none=False),
            "clip": lambda: torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm),
            "step": optimizer.step,
            "schedule": scheduler.step,
        }
        for call in order:
            calls[call]()
        return loss

    return step


def test_train_step_names_every_other_mistake(data):
    right = ["backward", "clip", "step", "schedule", "zero_grad"]
    passes(exercises.check_train_step(a_step(right), data))
    fails(
        exercises.check_train_step(a_step(["backward", "clip", "schedule", "zero_grad"]), data),
        "optimizer.step() was never called",
    )
    fails(
        exercises.check_train_step(a_step(["clip", "step", "schedule", "zero_grad"]), data),
        "there was no gradient: loss.backward() was never called",
    )
    fails(
        exercises.check_train_step(a_step(["backward", "zero_grad", "clip", "step", "schedule"]), data),
        "loss.backward() ran",
        "zero_grad() removed them (set them to None) between loss.backward() and optimizer.step()",
    )
    fails(
        exercises.check_train_step(
            a_step(["backward", "zero_grad to zeros", "clip", "step", "schedule"]), data
        ),
        "zero_grad() set them to zeros between loss.backward() and optimizer.step()",
    )
    fails(exercises.check_train_step(a_step(right, reduction="sum"), data), "reduction='sum'")
    fails(
        exercises.check_train_step(a_step(["backward", "clip", "step", "zero_grad"]), data),
        "the learning rate never moved",
    )
    fails(
        exercises.check_train_step(
            a_step(["backward", "clip", "step", "step", "schedule", "zero_grad"]), data
        ),
        "in that order and once each",
    )

    def without_gradient(model, batch, task, optimizer, scheduler, max_grad_norm):
        with torch.no_grad():
            loss = F.cross_entropy(model(batch["input_ids"], batch["attention_mask"], task), batch["labels"])
        loss.backward()
        return loss

    fails(exercises.check_train_step(without_gradient, data), "Hint: the loss has no gradient")


def test_the_made_up_history_makes_every_wrong_rule_choose_other_epochs():
    history = exercises.lesson4_training.history_of_measures_apart()
    rows = {task: history[history["task"] == task] for task in ("emotion", "sentiment")}
    right = exercises.best_epochs_by_fit(history)
    assert right == {"emotion": 3, "sentiment": 2}  # emotion's macro-F1 ties at 3 and 4: fit keeps the first
    chosen = [tuple(rule.values()) for rule, _ in exercises.lesson4_training.wrong_rules(history, rows)]
    assert len(set(chosen)) == len(chosen) and tuple(right.values()) not in chosen, chosen


def test_best_epochs_names_every_mistake_on_a_history_whose_measures_peak_apart():
    def by(column, lowest=False):
        def rule(history):
            return {
                task: int(rows.loc[rows[column].idxmin() if lowest else rows[column].idxmax(), "epoch"])
                for task, rows in history.groupby("task")
            }

        return rule

    def last_of_equal(history):
        return {
            task: int(rows.loc[rows["dev_official"] == rows["dev_official"].max(), "epoch"].max())
            for task, rows in history.groupby("task")
        }

    apart = "on a made-up history whose measures peak apart"
    fails(exercises.check_best_epochs(by("dev_accuracy")), apart, "the highest dev ACCURACY")
    fails(exercises.check_best_epochs(by("dev_loss", lowest=True)), apart, "the lowest dev LOSS")
    fails(
        exercises.check_best_epochs(by("dev_macro_f1")),
        apart,
        "sentiment's best epoch is 2, you said 3",
        "you used dev_macro_f1 for every task",
    )
    fails(
        exercises.check_best_epochs(by("dev_macro_recall")),
        apart,
        "emotion's best epoch is 3, you said 5",
        "you used dev_macro_recall for every task",
    )
    fails(
        exercises.check_best_epochs(last_of_equal),
        apart,
        "emotion's best epoch is 3, you said 4",
        "fit keeps the first",
    )
    fails(exercises.check_best_epochs(lambda history: [3, 2]), "return a dict {task: epoch}")
    fails(exercises.check_best_epochs(lambda history: {"emotion": 3}), "expected one per task")


# ---------------------------------------------------------------------------------------------
# Lesson 5
# ---------------------------------------------------------------------------------------------


def sentiment_score(y_true, y_pred):
    return recall_score(y_true, y_pred, labels=[0, 1, 2], average="macro", zero_division=0)


def test_sentiment_score(data):
    verdict = passes(exercises.check_sentiment_score(sentiment_score, data))
    assert "always the commonest label 0.333" in verdict.message
    fails(
        exercises.check_sentiment_score(lambda t, p: float(np.mean(np.array(t) == np.array(p))), data),
        "that is the accuracy",
    )
    fails(
        exercises.check_sentiment_score(lambda t, p: f1_score(t, p, average="macro"), data),
        "that is macro-F1",
    )
    fails(exercises.check_sentiment_score(lambda t, p: 100 * sentiment_score(t, p), data), "percentage")
    fails(
        exercises.check_sentiment_score(
            lambda t, p: recall_score(t, p, labels=sorted(set(p)), average="macro"), data
        ),
        "over the labels the model predicts",
    )


def test_sentiment_score_on_a_lessons_predictions(data):
    truth = pd.Categorical.from_codes([0, 1, 2, 2, 1, 0], ["negative", "neutral", "positive"])
    guess = pd.Categorical.from_codes([0, 1, 1, 2, 1, 1], ["negative", "neutral", "positive"])
    table = pd.DataFrame({"text": list("abcdef"), "true": truth, "predicted": guess})
    verdict = passes(exercises.check_sentiment_score(sentiment_score, data, predictions=table))
    assert "your model 0.667" in verdict.message


def stance_score(y_true, y_pred):
    return f1_score(y_true, y_pred, labels=[1, 2], average="macro", zero_division=0)


def test_stance_score(data):
    passes(exercises.check_stance_score(stance_score, data))
    fails(
        exercises.check_stance_score(lambda t, p: f1_score(t, p, labels=[0, 1, 2], average="macro"), data),
        "leaves out 'none'",
    )
    fails(
        exercises.check_stance_score(
            lambda t, p: f1_score(t, p, labels=[0, 1], average="macro", zero_division=0), data
        ),
        "against is 1 and favor is 2",
    )
    fails(
        exercises.check_stance_score(lambda t, p: f1_score(t, p, labels=[1, 2], average="micro"), data),
        "the MEAN of their F1s",
    )


def confusion(y_true, y_pred, num_labels):
    table = torch.zeros((num_labels, num_labels), dtype=torch.long)
    for truth, guess in zip(y_true, y_pred):
        table[truth, guess] += 1
    return table


def test_confusion(data):
    passes(exercises.check_confusion(confusion, data))
    fails(
        exercises.check_confusion(lambda t, p, n: confusion(t, p, n).T, data), "your rows are the predictions"
    )
    fails(
        exercises.check_confusion(lambda t, p, n: pd.crosstab(pd.Series(t), pd.Series(p)), data),
        "a label never predicted still needs its column",
    )
    fails(
        exercises.check_confusion(
            lambda t, p, n: confusion(t, p, n) / confusion(t, p, n).sum(1, keepdim=True), data
        ),
        "you normalised the rows",
    )


def test_checks_name_a_wrong_return_type(data):
    fails(exercises.check_temperature(lambda sizes, t: None, data), "not a dict")
    fails(exercises.check_sentiment_score(lambda t, p: None, data), "returned None: did you forget `return`?")
    fails(exercises.check_mean_pooling(lambda hidden, mask: None, data), "forget `return`")
    assert dataclasses.is_dataclass(exercises.Verdict)


def test_score_checks_name_every_other_mistake(data):
    fails(
        exercises.check_sentiment_score(
            lambda t, p: precision_score(t, p, average="macro", zero_division=0), data
        ),
        "that is macro-precision",
    )
    fails(
        exercises.check_sentiment_score(lambda t, p: f1_score(t, p, labels=[0, 2], average="macro"), data),
        "the mean F1 of positive and negative",
    )
    fails(
        exercises.check_stance_score(
            lambda t, p: recall_score(t, p, labels=[1, 2], average="macro", zero_division=0), data
        ),
        "that is the mean RECALL of against and favor",
    )
    fails(
        exercises.check_stance_score(lambda t, p: f1_score(t, p, labels=[2], average="macro"), data),
        "that is the F1 of favor alone",
    )
    fails(exercises.check_confusion(lambda t, p, n: "a table", data), "your confusion is a str")


# ---------------------------------------------------------------------------------------------
# Lesson 6
# ---------------------------------------------------------------------------------------------


def pcgrad_projections(g1, g2):
    dot = g1 @ g2
    if dot >= 0:
        return g1, g2
    return g1 - dot / (g2 @ g2) * g2, g2 - dot / (g1 @ g1) * g1


def test_pcgrad_projection(data):
    verdict = passes(exercises.check_pcgrad_projection(pcgrad_projections, data))
    assert "conflict, (3, 1) and (-2, 2): cosine -0.447, both projected" in verdict.message
    assert "pcgrad_pair" in verdict.message

    def always(g1, g2):
        dot = g1 @ g2
        return g1 - dot / (g2 @ g2) * g2, g2 - dot / (g1 @ g1) * g1

    def onto_itself(g1, g2):
        dot = g1 @ g2
        return (g1 - dot / (g1 @ g1) * g1, g2 - dot / (g2 @ g2) * g2) if dot < 0 else (g1, g2)

    def only_the_first(g1, g2):
        dot = g1 @ g2
        return (g1 - dot / (g2 @ g2) * g2, g2) if dot < 0 else (g1, g2)

    def wrong_length(g1, g2):
        dot = g1 @ g2
        return (g1 - dot / (g1 @ g1) * g2, g2 - dot / (g2 @ g2) * g1) if dot < 0 else (g1, g2)

    def the_step(g1, g2):
        return sum(pcgrad_projections(g1, g2))

    def in_place(g1, g2):
        dot = g1 @ g2
        if dot < 0:
            g1 -= dot / (g2 @ g2) * g2
        return g1, g2

    fails(
        exercises.check_pcgrad_projection(always, data),
        "agree, (2, 1) and (1, 3)",
        "you projected although they agree",
    )
    fails(exercises.check_pcgrad_projection(onto_itself, data), "along ITSELF")
    fails(exercises.check_pcgrad_projection(only_the_first, data), "you projected only g1")
    fails(exercises.check_pcgrad_projection(wrong_length, data), "squared length of the wrong gradient")
    fails(exercises.check_pcgrad_projection(the_step, data), "PCGrad's step, the sum", "as a pair")
    fails(exercises.check_pcgrad_projection(in_place, data), "changed the gradients it was given")


def test_the_real_gradients_of_lesson_6_conflict_so_the_projection_is_tried_on_real_data(data):
    emotion, sentiment = exercises.real_gradients(data)
    assert emotion.shape == sentiment.shape and emotion.dim() == 1
    assert (emotion @ sentiment < 0) != (emotion @ -sentiment < 0)  # one of the two real pairs conflicts


def min_norm_point(g1, g2):
    difference = g2 - g1
    share = ((difference @ g2) / (difference @ difference)).clamp(0, 1)
    return share * g1 + (1 - share) * g2


def test_mgda_two_tasks(data):
    verdict = passes(exercises.check_mgda_two_tasks(min_norm_point, data))
    assert "(3, 1) and (-2, 2): a = 0.46" in verdict.message and "an end: a = 1.00" in verdict.message

    def not_clamped(g1, g2):
        difference = g2 - g1
        share = (difference @ g2) / (difference @ difference)
        return share * g1 + (1 - share) * g2

    def swapped(g1, g2):
        difference = g2 - g1
        share = ((difference @ g2) / (difference @ difference)).clamp(0, 1)
        return (1 - share) * g1 + share * g2

    def the_weight(g1, g2):
        difference = g2 - g1
        return ((difference @ g2) / (difference @ difference)).clamp(0, 1)

    fails(exercises.check_mgda_two_tasks(not_clamped, data), "an end", "you did not keep a within [0, 1]")
    fails(exercises.check_mgda_two_tasks(swapped, data), "you swapped the weights")
    fails(exercises.check_mgda_two_tasks(lambda g1, g2: (g1 + g2) / 2, data), "that is the mean")
    fails(exercises.check_mgda_two_tasks(the_weight, data), "you returned one number")


def test_uncertainty_loss(data):
    verdict = passes(exercises.check_uncertainty_loss(lambda L, s: (torch.exp(-s) * L + s).sum(), data))
    assert "on the real losses emotion" in verdict.message
    fails(
        exercises.check_uncertainty_loss(lambda L, s: (torch.exp(-s) * L).sum(), data),
        "you left out the + s_i",
    )
    fails(exercises.check_uncertainty_loss(lambda L, s: (torch.exp(s) * L + s).sum(), data), "exp(s_i) L_i")
    fails(exercises.check_uncertainty_loss(lambda L, s: (torch.exp(-s) * L + s).mean(), data), "add them up")
    fails(
        exercises.check_uncertainty_loss(lambda L, s: (0.5 * torch.exp(-s) * L + 0.5 * s).sum(), data),
        "regression form",
    )  # the same value as the mean, with two tasks: one message names both
    fails(
        exercises.check_uncertainty_loss(lambda L, s: (torch.exp(-s) * L + s).sum().item(), data),
        "has no gradient",
    )


def test_gradient_checks_name_every_other_mistake(data):
    def conflicting(project):
        return lambda g1, g2: project(g1, g2, g1 @ g2) if g1 @ g2 < 0 else (g1, g2)

    fails(
        exercises.check_pcgrad_projection(lambda g1, g2: (g1, g2), data),
        "you left them alone, but they conflict",
    )
    fails(
        exercises.check_pcgrad_projection(
            conflicting(lambda g1, g2, dot: (g1, g2 - dot / (g1 @ g1) * g1)), data
        ),
        "you projected only g2",
    )
    fails(
        exercises.check_pcgrad_projection(
            conflicting(lambda g1, g2, dot: (g1 - dot * g2, g2 - dot * g1)), data
        ),
        "you forgot to divide by the squared length",
    )
    fails(
        exercises.check_pcgrad_projection(
            conflicting(lambda g1, g2, dot: (g1 - dot / g2.norm() * g2, g2 - dot / g1.norm() * g1)), data
        ),
        "not by the squared length",
    )
    fails(
        exercises.check_pcgrad_projection(
            conflicting(lambda g1, g2, dot: (g1 + dot / (g2 @ g2) * g2, g2 + dot / (g1 @ g1) * g1)), data
        ),
        "you ADDED the component",
    )
    fails(
        exercises.check_pcgrad_projection(
            conflicting(lambda g1, g2, dot: pcgrad_projections(g1, g2)[::-1]), data
        ),
        "you returned them in the other order",
    )
    fails(exercises.check_pcgrad_projection(lambda g1, g2: [g1], data), "return a pair (g1_new, g2_new)")
    fails(exercises.check_mgda_two_tasks(lambda g1, g2: g1 + g2, data), "that is the sum of the two")
    fails(
        exercises.check_mgda_two_tasks(lambda g1, g2: g1 if g1.norm() <= g2.norm() else g2, data),
        "that is the shorter of the two gradients",
    )
    fails(
        exercises.check_uncertainty_loss(lambda L, s: (torch.exp(-s) * L - s).sum(), data),
        "you subtracted s_i",
    )
    fails(
        exercises.check_uncertainty_loss(lambda L, s: (torch.exp(-s.detach()) * L + s).sum(), data),
        "your loss's gradient with respect to the log-variances",
    )
