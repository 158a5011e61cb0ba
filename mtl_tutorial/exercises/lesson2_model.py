"""Lesson 2's checks (notebooks/02_model): mean pooling, the classification head, routing by task."""

from __future__ import annotations


import torch
import torch.nn.functional as F
from torch import nn

from ..model import ClassificationHead, MultiTaskModel, sequence_representation
from .fixtures import pretrained_encoder, real_batch, task
from .verdicts import Wrong, as_tensor, call, close, exercise, name_the_mistake


def encoder_outputs(data_dir: str | None = None, count: int = 8):
    """MiniLM's outputs for the first `count` emotion training tweets (of several lengths), and the batch."""
    batch = real_batch("emotion", 0, count, data_dir)
    with torch.no_grad():
        outputs = pretrained_encoder()(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    return outputs, batch


@exercise("Lesson 2, exercise 1: one vector per tweet, the mean of its tokens")
def check_mean_pooling(mean_pool, data_dir: str | None = None) -> str:
    """`mean_pool(last_hidden_state, attention_mask) -> (tweets, hidden)`: each tweet's mean REAL token."""
    outputs, batch = encoder_outputs(data_dir)
    hidden, mask = outputs.last_hidden_state, batch["attention_mask"]
    expected = sequence_representation(outputs, mask, "mean")
    answer = as_tensor(call(mean_pool, hidden.clone(), mask.clone()), "what your function returned")
    size, width, features = hidden.shape
    shapes = {
        (size, width): ": you averaged over the hidden dimension (dim=-1); average over the tokens (dim=1)",
        (features,): ": you averaged over the whole batch too; keep one vector per tweet",
        (size, width, features): ": you did not average, there is still one vector per token",
    }
    if tuple(answer.shape) != (size, features):
        raise Wrong(f"your vectors have shape {tuple(answer.shape)}, expected ({size}, {features})"
                    + shapes.get(tuple(answer.shape), ""))
    if not close(answer, expected, atol=1e-4):
        as_float = mask.unsqueeze(-1).float()
        mistake = name_the_mistake(answer, [
            (hidden.mean(1),
             ("your mean counts the pad tokens: multiply by the mask before summing, and divide by each "
              "tweet's number of real tokens")),
            ((hidden * as_float).sum(1) / width,
             "you divided by the batch's width, not by each tweet's own number of tokens"),
            ((hidden * as_float).sum(1), "you summed the token vectors but did not divide by their number"),
            (hidden[:, 0], "that is the first token's vector ('cls' pooling), not the mean"),
        ], lambda a, b: close(a, b, atol=1e-4))
        raise Wrong("your vectors differ from the mean of the real tokens (largest difference "
                    f"{(answer - expected).abs().max():.3g})" + mistake)
    real = mask.sum(1)
    return (f"{size} tweets of {int(real.min())} to {int(real.max())} tokens in a batch {width} wide gave "
            f"{size} vectors of {features}, each the mean of its tweet's own tokens: a tweet's vector does "
            "not depend on how much padding its batch has.")


@exercise("Lesson 2, exercise 2: the classification head")
def check_head(head_class, data_dir: str | None = None) -> str:
    """`Head(hidden_size, num_labels, dropout=0.1)`: an nn.Module, dense -> tanh -> dropout -> linear,
    its weights drawn from N(0, 0.02) and its biases zero, like the package's `ClassificationHead`."""
    outputs, batch = encoder_outputs(data_dir, count=16)
    features = sequence_representation(outputs, batch["attention_mask"], "mean")
    hidden, labels = features.shape[1], len(task("emotion", data_dir).label_names)
    head = call(head_class, hidden, labels, 0.1)
    if not isinstance(head, nn.Module):
        raise Wrong(f"your class made a {type(head).__name__}: subclass torch.nn.Module (and call "
                    "super().__init__() first)")
    linears = [module for module in head.modules() if isinstance(module, nn.Linear)]
    if len(linears) != 2:
        raise Wrong(f"your head has {len(linears)} linear layer{'s' * (len(linears) != 1)}; it needs two: "
                    f"dense ({hidden} -> {hidden}), then the output layer ({hidden} -> {labels} labels)")
    dense = next((layer for layer in linears if layer.out_features == hidden), linears[0])
    out = next(layer for layer in linears if layer is not dense)
    if (dense.in_features, dense.out_features, out.in_features) != (hidden, hidden, hidden):
        raise Wrong(f"your layers map {[(layer.in_features, layer.out_features) for layer in linears]}; "
                    f"expected dense {hidden} -> {hidden} and output {hidden} -> {labels}")
    if out.out_features != labels:
        raise Wrong(f"your output layer gives {out.out_features} scores, but emotion has {labels} labels: "
                    "use num_labels")
    initialisation = initialisation_problems({"dense": dense, "output": out})

    reference = ClassificationHead(hidden, labels, 0.1)
    with torch.no_grad():
        for mine, theirs in ((dense, reference.dense), (out, reference.out)):  # both heads: the same weights
            mine.weight.copy_(theirs.weight)
            if mine.bias is not None:
                mine.bias.copy_(theirs.bias)
        answer = as_tensor(call(head.eval(), features), "your head's output")
        expected = reference.eval()(features)
        if not close(answer, expected):
            plain = reference.out(reference.dense(features))
            mistake = name_the_mistake(answer, [
                (plain, "you left out the tanh between the dense and the output layer"),
                (reference.out(torch.relu(reference.dense(features))),
                 "you used ReLU; this head has tanh after its dense layer (as BERT's pooler and RoBERTa's "
                 "classification head do)"),
                (expected.softmax(-1),
                 "your head returns probabilities (softmax); return logits, the loss applies the softmax "
                 "itself"),
                (torch.tanh(plain), "you put the tanh after the output layer; it goes between dense and "
                                    "output"),
            ], close)
            raise Wrong("in eval mode your head's output differs from dense -> tanh -> linear with the same "
                        "weights" + (mistake or " (largest difference "
                                                f"{(answer - expected).abs().max():.3g})"))
        torch.manual_seed(1)
        in_training = as_tensor(call(head.train(), features), "your head's output")
        torch.manual_seed(1)
        expected_in_training = reference.train()(features)
        if not close(in_training, expected_in_training):
            if close(in_training, answer):
                raise Wrong("your head has no dropout: in training mode it gives exactly what it gives in "
                            "eval mode. Apply nn.Dropout(dropout) between the tanh and the output layer")
            torch.manual_seed(1)
            on_input = reference.out(torch.tanh(reference.dense(F.dropout(features, 0.1))))
            raise Wrong("you apply dropout to the head's input; apply it to the tanh's output, just before "
                        "the output layer" if close(in_training, on_input) else
                        "in training mode your head differs from the package's: apply dropout once, with "
                        "probability `dropout`, between the tanh and the output layer")
    if initialisation:
        raise Wrong("the computation is right, but " + "; ".join(initialisation))
    return (f"dense {hidden} -> {hidden}, tanh, dropout (in training mode only), output {hidden} -> "
            f"{labels}; weights from N(0, 0.02) and zero biases: on 16 real tweets, the same logits as "
            "ClassificationHead.")


def initialisation_problems(layers: dict[str, nn.Linear]) -> list[str]:
    """What differs from BERT's initialisation of its linear layers: N(0, 0.02) weights, zero biases."""
    problems = []
    for name, layer in layers.items():
        weight = layer.weight.detach()
        if not 0.018 < float(weight.std()) < 0.022 or abs(float(weight.mean())) > 0.002:
            problems.append(f"your {name} layer's weights have standard deviation {weight.std():.3f}: BERT "
                            "starts its layers from N(0, 0.02), nn.init.normal_(weight, mean=0.0, std=0.02)")
        if layer.bias is None or bool(layer.bias.detach().abs().max() > 0):
            problems.append(f"your {name} layer's biases are not zero: nn.init.zeros_(bias)")
    return problems


@exercise("Lesson 2, exercise 3: MultiTaskModel.forward, routing by task")
def check_forward(forward, data_dir: str | None = None) -> str:
    """`forward(self, input_ids, attention_mask, task)`: the shared encoder, one vector per tweet, then the
    head of `task` (self.heads[task]). Checked on a MultiTaskModel with the pre-trained MiniLM, two heads."""
    tasks = {name: task(name, data_dir).label_names for name in ("emotion", "sentiment")}
    model = MultiTaskModel(pretrained_encoder(), tasks, pooling="mean").eval()
    outputs, batch = encoder_outputs(data_dir)
    ids, mask = batch["input_ids"], batch["attention_mask"]
    shapes = []
    with torch.no_grad():
        for name in tasks:
            expected = model(ids, mask, name)
            answer = as_tensor(call(forward, model, ids, mask, name), f"your forward's answer for {name!r}")
            if answer.shape != expected.shape:
                other = [o for o in tasks if (len(ids), len(tasks[o])) == tuple(answer.shape)]
                hint = f"did you use the {other[0]} head?" if other else f"expect {tuple(expected.shape)}"
                raise Wrong(f"you returned logits of shape {tuple(answer.shape)} but {name} has "
                            f"{len(tasks[name])} labels: {hint}")
            if not close(answer, expected, atol=1e-4):
                head = model.heads[name]
                without_mask = model.encoder(input_ids=ids)
                use = "use mtl.model.sequence_representation(outputs, attention_mask, self.pooling)"
                mistake = name_the_mistake(answer, [
                    (expected.softmax(-1),
                     "you returned probabilities (softmax); return the logits, the loss applies the softmax"),
                    (head(outputs.last_hidden_state[:, 0]),
                     f"you took the first token's vector, but this model's pooling is 'mean': {use}"),
                    (head(outputs.last_hidden_state.mean(1)),
                     f"your mean includes the pad tokens: {use}, which leaves them out"),
                    (head(sequence_representation(without_mask, mask, "mean")),
                     "you did not pass the attention mask to the encoder, so the real tokens attend to the "
                     "pads"),
                    (head(outputs.pooler_output),
                     f"you used the encoder's pooler_output, but this model's pooling is 'mean': {use}"),
                ], lambda a, b: close(a, b, atol=1e-4))
                raise Wrong(f"for {name!r} your logits differ from MultiTaskModel.forward's"
                            + (mistake or f" (largest difference {(answer - expected).abs().max():.3g})"))
            shapes.append(f"{name} -> {tuple(answer.shape)}")
        try:
            forward(model, ids, mask, "irony")
        except Exception as error:  # the right behaviour: a task without a head is refused
            refused = error.__class__.__name__
        else:
            raise Wrong("this model has no head for 'irony', yet your forward returned an answer for it: "
                        "index self.heads with the task's name, so that an unknown task raises an error")
    return (f"{', '.join(shapes)}: the same logits as MultiTaskModel.forward on real tweets (the encoder's "
            f"mean vector through the task's own head), and a task without a head refused ({refused}).")
