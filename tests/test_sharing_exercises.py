"""Lesson 8's checks: a right answer passes, each typical mistake is named, on real tweets and real models."""

import itertools

import pytest

from mtl_tutorial.exercises import check_lora_update, check_soft_penalty


def lora_forward(x, weight, bias, A, B, alpha, rank):
    return x @ weight.T + bias + (alpha / rank) * (x @ A.T @ B.T)


def pairwise(encoders, strength):
    total = 0
    for first, second in itertools.combinations(encoders, 2):
        total = total + sum((a - b).pow(2).sum() for a, b in zip(first.parameters(), second.parameters()))
    return strength / 2 * total


def test_the_right_lora_update_passes(tweeteval_dir):
    verdict = check_lora_update(lora_forward, tweeteval_dir)
    assert verdict.passed, verdict.message
    assert "r = 8, alpha = 16" in verdict.message and "r = 4, alpha = 32" in verdict.message


@pytest.mark.parametrize("mistake, words", [
    (lambda x, W, b, A, B, alpha, r: x @ W.T + b + x @ A.T @ B.T, "you left out the scale alpha / r"),
    (lambda x, W, b, A, B, alpha, r: x @ W.T + b + alpha * (x @ A.T @ B.T), "by alpha; LoRA scales it"),
    (lambda x, W, b, A, B, alpha, r: x @ W.T + (alpha / r) * (x @ A.T @ B.T), "the frozen layer's bias"),
    (lambda x, W, b, A, B, alpha, r: x @ W.T + b + 2 * (x @ A.T @ B.T), "with r = 4 and alpha = 32"),
    (lambda x, W, b, A, B, alpha, r: x @ W + b + (alpha / r) * (x @ A.T @ B.T), "not its transpose"),
    (lambda x, W, b, A, B, alpha, r: x @ W.T + b + (alpha / r) * (x @ A @ B), "raised RuntimeError"),
])
def test_lora_update_mistakes_are_named(mistake, words, tweeteval_dir):
    verdict = check_lora_update(mistake, tweeteval_dir)
    assert not verdict.passed and words in verdict.message, verdict.message


def test_the_right_soft_penalty_passes():
    verdict = check_soft_penalty(pairwise)
    assert verdict.passed, verdict.message


@pytest.mark.parametrize("mistake, words", [
    (lambda encoders, strength: 2 * pairwise(encoders, strength), "you left out the 1/2"),
    (lambda encoders, strength: pairwise(encoders, strength).detach(), "has no gradient"),
    (lambda encoders, strength: pairwise(encoders[:2], strength), "only the first pair"),
    (lambda encoders, strength: pairwise(encoders, strength) / len(encoders), "sum_i ||theta_i - mean||^2"),
])
def test_soft_penalty_mistakes_are_named(mistake, words):
    verdict = check_soft_penalty(mistake)
    assert not verdict.passed and words in verdict.message, verdict.message
