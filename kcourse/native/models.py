"""The seeds' PyTorch models (TP3 CNN, TP4 Transformer and SkipGramNS), at the kcourse labs' sizes."""

import math

import torch
import torch.nn.functional as F
from torch import nn


class MLP(nn.Module):
    """784 -> 128 -> 10 (101,770 parameters), as kcourse.tasks.mnist.build_mlp."""

    def __init__(self, hidden=128, classes=10):
        super().__init__()
        self.fc1 = nn.Linear(28 * 28, hidden)
        self.fc2 = nn.Linear(hidden, classes)

    def forward(self, x):  # (B, 1, 28, 28)
        return self.fc2(F.relu(self.fc1(x.flatten(1))))  # (B, 10) logits


class VanillaCNN(nn.Module):
    """The TP3 review's vanilla CNN (27,830 parameters), line for line from the seed (logits out)."""

    def __init__(self, dropout=0.5):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 10, kernel_size=5, padding=2)
        self.conv2 = nn.Conv2d(10, 10, kernel_size=5, padding=2)
        self.fc1 = nn.Linear(490, 50)  # N = 10 x 7 x 7
        self.fc2 = nn.Linear(50, 10)
        self.dropout = dropout

    def forward(self, x):  # (B, 1, 28, 28)
        x = F.relu(F.max_pool2d(self.conv1(x), 2))  # (B, 10, 14, 14)
        x = F.relu(F.max_pool2d(self.conv2(x), 2))  # (B, 10, 7, 7)
        x = x.reshape(-1, 490)  # the seed's view(-1, 490), which a non-contiguous batch refuses
        x = F.relu(self.fc1(x))
        x = F.dropout(x, self.dropout, training=self.training)
        return self.fc2(x)  # logits: cross_entropy = log_softmax + nll, as the seed


class MultiHeadSelfAttention(nn.Module):
    """The TP4 review's attention: four d_model x d_model projections without bias, heads by reshaping."""

    def __init__(self, d_model=64, n_heads=2, drop=0.1):
        super().__init__()
        self.n_heads, self.d_head = n_heads, d_model // n_heads
        self.Wq = nn.Linear(d_model, d_model, bias=False)
        self.Wk = nn.Linear(d_model, d_model, bias=False)
        self.Wv = nn.Linear(d_model, d_model, bias=False)
        self.Wo = nn.Linear(d_model, d_model, bias=False)
        self.attn_drop, self.proj_drop = nn.Dropout(drop), nn.Dropout(drop)

    def forward(self, x, mask):  # x (B, L, d), mask (B, L) True for tokens
        B, L, d = x.shape
        q, k, v = (w(x).view(B, L, self.n_heads, self.d_head).transpose(1, 2) for w in (self.Wq, self.Wk, self.Wv))
        scores = q @ k.transpose(-2, -1) / math.sqrt(self.d_head)  # (B, H, L, L)
        scores = scores.masked_fill(~mask[:, None, None, :], -1e9)
        out = self.attn_drop(scores.softmax(-1)) @ v  # (B, H, L, d_head)
        return self.proj_drop(self.Wo(out.transpose(1, 2).reshape(B, L, d)))


class EncoderBlock(nn.Module):
    """Pre-LayerNorm block of the TP4 handout: x + attn(LN1 x), then x + MLP(LN2 x)."""

    def __init__(self, d_model=64, n_heads=2, mlp_ratio=2.0, drop=0.1):
        super().__init__()
        self.attn = MultiHeadSelfAttention(d_model, n_heads, drop)
        self.norm1, self.norm2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        hidden = int(d_model * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(d_model, hidden), nn.GELU(), nn.Dropout(drop), nn.Linear(hidden, d_model), nn.Dropout(drop))

    def forward(self, x, mask):
        x = x + self.attn(self.norm1(x), mask)
        return x + self.mlp(self.norm2(x))


class TinyTransformerClassifier(nn.Module):
    """The TP4 classifier: embedding, sinusoidal PE, pre-LN blocks, LayerNorm, a linear head on [CLS]."""

    def __init__(self, vocab_size, max_len=32, d_model=64, n_heads=2, n_layers=2, num_classes=2,
                 mlp_ratio=2.0, drop=0.1, pad_id=0):
        super().__init__()
        self.pad_id = pad_id
        self.embed = nn.Embedding(vocab_size, d_model)
        position = torch.arange(max_len)[:, None]
        freq = torch.exp(torch.arange(0, d_model, 2) * (-math.log(10000.0) / d_model))
        pe = torch.zeros(max_len, d_model)
        pe[:, 0::2], pe[:, 1::2] = torch.sin(position * freq), torch.cos(position * freq)
        self.register_buffer("pe", pe)  # not a parameter
        self.layers = nn.ModuleList([EncoderBlock(d_model, n_heads, mlp_ratio, drop) for _ in range(n_layers)])
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, num_classes)

    def forward(self, x):  # (B, L) token ids, [CLS] first
        mask = x != self.pad_id
        h = self.embed(x) + self.pe[: x.shape[1]]  # (B, L, d_model)
        for layer in self.layers:
            h = layer(h, mask)
        return self.head(self.norm(h)[:, 0])  # (B, num_classes)


class SkipGramNS(nn.Module):
    """The TP4 SkipGramNS: u = in_embed (uniform +-0.5/dim), v = out_embed (zeros); the mean NS loss."""

    def __init__(self, vocab, dim=50):
        super().__init__()
        self.in_embed = nn.Embedding(vocab, dim)
        self.out_embed = nn.Embedding(vocab, dim)
        nn.init.uniform_(self.in_embed.weight, -0.5 / dim, 0.5 / dim)
        nn.init.zeros_(self.out_embed.weight)

    def forward(self, center, pos, neg):  # (B,), (B, P), (B, K)
        center_v = self.in_embed(center)  # (B, D)
        pos_score = torch.einsum("bd,bpd->bp", center_v, self.out_embed(pos))  # (B, P)
        neg_score = torch.einsum("bd,bkd->bk", center_v, self.out_embed(neg))  # (B, K)
        loss = -(F.logsigmoid(pos_score).sum(-1) + F.logsigmoid(-neg_score).sum(-1))
        return loss.mean()
