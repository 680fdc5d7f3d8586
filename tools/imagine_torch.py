"""PyTorch twin of clipkit's text-to-image transformer (crates/clipkit/src/model/imagine/).

Written from the Rust model's description, not from its code: one stream of caption ids
(0..text_vocab) then image codes (text_vocab + c), learned positions, pre-norm blocks with
causal attention (separate q/k/v/out maps) and a tanh-GELU MLP, a final norm and an untied
output layer; the loss reads the code columns at image positions and the text columns at
caption positions. Parameter names are the checkpoint's, so a `model.safetensors` written
by either side loads in the other.
"""

import math

import torch
import torch.nn.functional as F
from torch import nn


class Block(nn.Module):
    def __init__(self, c, heads, inner, eps):
        super().__init__()
        self.heads = heads
        self.ln_1 = nn.LayerNorm(c, eps=eps)
        self.attn = nn.Module()
        for name in ("q_proj", "k_proj", "v_proj", "out_proj"):
            setattr(self.attn, name, nn.Linear(c, c))
        self.ln_2 = nn.LayerNorm(c, eps=eps)
        self.mlp = nn.Module()
        self.mlp.fc = nn.Linear(c, inner)
        self.mlp.proj = nn.Linear(inner, c)

    def attention(self, x):
        b, l, c = x.shape
        h, d = self.heads, c // self.heads
        split = lambda t: t.view(b, l, h, d).transpose(1, 2)
        q, k, v = (split(getattr(self.attn, n)(x)) for n in ("q_proj", "k_proj", "v_proj"))
        scores = q @ k.transpose(-1, -2) / math.sqrt(d)
        mask = torch.ones(l, l, dtype=torch.bool, device=x.device).triu(1)
        scores = scores.masked_fill(mask, float("-inf"))
        out = scores.softmax(-1) @ v
        return self.attn.out_proj(out.transpose(1, 2).reshape(b, l, c))

    def forward(self, x):
        x = x + self.attention(self.ln_1(x))
        return x + self.mlp.proj(F.gelu(self.mlp.fc(self.ln_2(x)), approximate="tanh"))


class Imagine(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        c = cfg["hidden_size"]
        vocab = cfg["text_vocab"] + cfg["codebook_size"]
        length = cfg["text_length"] + cfg["grid"][0] * cfg["grid"][1]
        self.wte = nn.Embedding(vocab, c)
        self.wpe = nn.Module()
        self.wpe.weight = nn.Parameter(torch.zeros(length, c))
        self.h = nn.ModuleList(
            Block(c, cfg["num_heads"], cfg["intermediate_size"], cfg["layer_norm_eps"])
            for _ in range(cfg["num_layers"])
        )
        self.ln_f = nn.LayerNorm(c, eps=cfg["layer_norm_eps"])
        self.lm_head = nn.Linear(c, vocab, bias=False)

    def forward(self, ids):
        x = self.wte(ids) + self.wpe.weight[: ids.shape[1]]
        for block in self.h:
            x = block(x)
        return self.lm_head(self.ln_f(x))

    def loss(self, text, codes, text_weight):
        tv, k = self.cfg["text_vocab"], self.cfg["codebook_size"]
        t, n = text.shape[1], codes.shape[1]
        stream = torch.cat([text, codes + tv], 1)
        logits = self(stream[:, : t + n - 1])
        image = F.cross_entropy(logits[:, t - 1 :, tv:].reshape(-1, k), codes.reshape(-1))
        text_loss = F.cross_entropy(logits[:, : t - 1, :tv].reshape(-1, tv), text[:, 1:].reshape(-1))
        return image + text_weight * text_loss, image, text_loss, logits
