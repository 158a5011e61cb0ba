"""A tweet classifier exported by mtl-tutorial: an encoder, one vector per text, and the head the package
trains (dense -> tanh -> dropout -> linear).

`mtl-tutorial export` copies this file beside the weights and names it in config.json's `auto_map`, so
`AutoModelForSequenceClassification.from_pretrained(folder, trust_remote_code=True)` and
`pipeline("text-classification", model=folder, trust_remote_code=True)` load it. It needs only torch and
transformers. Its own model type means that, without trust_remote_code, loading stops with an error instead
of building a different model. `config.pooling` says how a text becomes one vector:
    mean      the mean of its real tokens' last hidden states
    pooler    the encoder's own pooler output (BERT, RoBERTa: dense + tanh on the first token)
    cls       the first token's last hidden state
"""

import torch
from torch import nn
from transformers import AutoConfig, AutoModel, PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import SequenceClassifierOutput


class PooledEncoderConfig(PretrainedConfig):
    """The encoder's own config (as a dict, under `encoder`), the pooling and the head's dropout."""

    model_type = "mtl_tutorial_pooled_encoder"

    def __init__(self, encoder=None, pooling="mean", head_dropout=0.1, **kwargs):
        self.encoder = dict(encoder or {"model_type": "bert"})
        self.pooling = pooling
        self.head_dropout = head_dropout
        super().__init__(**kwargs)

    def encoder_config(self):
        settings = dict(self.encoder)
        return AutoConfig.for_model(settings.pop("model_type"), **settings)


class ClassificationHead(nn.Module):
    """dense -> tanh -> dropout -> linear, as mtl_tutorial.model.ClassificationHead."""

    def __init__(self, hidden_size, num_labels, dropout):
        super().__init__()
        self.dense = nn.Linear(hidden_size, hidden_size)
        self.activation = nn.Tanh()
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(hidden_size, num_labels)

    def forward(self, features):
        return self.out(self.dropout(self.activation(self.dense(features))))


class PooledEncoderForSequenceClassification(PreTrainedModel):
    """The encoder (built by AutoModel from `config.encoder`), the pooling, and one classification head."""

    config_class = PooledEncoderConfig
    base_model_prefix = "encoder"

    def __init__(self, config):
        super().__init__(config)
        self.encoder = AutoModel.from_config(config.encoder_config())
        hidden_size = self.encoder.config.hidden_size
        self.head = ClassificationHead(hidden_size, config.num_labels, config.head_dropout)
        self.post_init()

    def pool(self, outputs, attention_mask):
        if self.config.pooling == "mean":
            mask = attention_mask.unsqueeze(-1).to(outputs.last_hidden_state.dtype)
            return (outputs.last_hidden_state * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        if self.config.pooling == "cls":
            return outputs.last_hidden_state[:, 0]
        return outputs.pooler_output

    def forward(self, input_ids=None, attention_mask=None, labels=None, **encoder_inputs):
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        encoder_inputs.pop("return_dict", None)
        outputs = self.encoder(input_ids=input_ids, attention_mask=attention_mask, **encoder_inputs)
        logits = self.head(self.pool(outputs, attention_mask))
        loss = None if labels is None else nn.functional.cross_entropy(logits, labels)
        return SequenceClassifierOutput(loss=loss, logits=logits)
