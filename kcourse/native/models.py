"""The seeds' PyTorch models (TP3 CNN, TP4 Transformer and SkipGramNS) the TP5 U-Net and a ViT, at the kcourse labs' sizes."""

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


class ConvBlock(nn.Sequential):
    """Conv3x3 (no bias) -> BatchNorm -> ReLU, twice: kcourse.layers.ConvBlock, NCHW."""

    def __init__(self, channels_in, channels):
        super().__init__(
            nn.Conv2d(channels_in, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels, eps=1e-3, momentum=0.01), nn.ReLU(),
            nn.Conv2d(channels, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels, eps=1e-3, momentum=0.01), nn.ReLU(),
        )  # eps and momentum: Keras' BatchNormalization defaults (its momentum 0.99 is PyTorch's 0.01)


class UNet(nn.Module):
    """kcourse.models.UNet (transpose upsampling, batch norm) in PyTorch: the TP5 U-Net at the lab's sizes."""

    def __init__(self, num_outputs=4, depth=3, base_filters=16, channels_in=1):
        super().__init__()
        widths = [base_filters * 2**i for i in range(depth + 1)]  # F, 2F, ..., 2^depth F
        self.stem = ConvBlock(channels_in, widths[0])
        self.downs = nn.ModuleList([ConvBlock(widths[i - 1], widths[i]) for i in range(1, depth + 1)])
        self.ups = nn.ModuleList([nn.ConvTranspose2d(widths[i + 1], widths[i], 2, stride=2) for i in reversed(range(depth))])
        self.up_convs = nn.ModuleList([ConvBlock(2 * widths[i], widths[i]) for i in reversed(range(depth))])
        self.head = nn.Conv2d(widths[0], num_outputs, 1)

    def forward(self, x):  # (B, C, H, W), H and W multiples of 2^depth
        features = [self.stem(x)]  # (B, F, H, W)
        for down in self.downs:
            features.append(down(F.max_pool2d(features[-1], 2)))  # (B, F 2^i, H / 2^i, W / 2^i)
        h = features[-1]
        for up, conv, skip in zip(self.ups, self.up_convs, reversed(features[:-1])):
            h = conv(torch.cat([up(h), skip], dim=1))  # (B, F 2^i, H / 2^i, W / 2^i)
        return self.head(h)  # (B, num_outputs, H, W) logits


class ViT(nn.Module):
    """keras-hub's ViTBackbone in PyTorch (patch convolution, [CLS], learned positions, pre-LN blocks, final
    LayerNorm) with the lab's linear head on [CLS]: the same parameters, ImageNet-normalised inputs in [0, 255]."""

    def __init__(self, image_shape=(32, 32, 3), patch_size=4, num_layers=4, num_heads=4, hidden_dim=64, mlp_dim=128, num_classes=2):
        super().__init__()
        tokens = 1 + (image_shape[0] // patch_size) * (image_shape[1] // patch_size)
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1) * 255)
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1) * 255)
        self.patches = nn.Conv2d(image_shape[2], hidden_dim, patch_size, stride=patch_size)
        self.cls = nn.Parameter(torch.zeros(1, 1, hidden_dim))
        self.positions = nn.Parameter(torch.randn(1, tokens, hidden_dim) * 0.02)
        block = nn.TransformerEncoderLayer(hidden_dim, num_heads, mlp_dim, dropout=0.0, activation="gelu",
                                           layer_norm_eps=1e-6, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(block, num_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(hidden_dim, eps=1e-6)
        self.head = nn.Linear(hidden_dim, num_classes)

    def forward(self, x):  # (B, 3, H, W) in [0, 255]
        h = self.patches((x - self.mean) / self.std).flatten(2).transpose(1, 2)  # (B, N, D)
        h = torch.cat([self.cls.expand(len(h), -1, -1), h], dim=1) + self.positions  # (B, 1+N, D)
        return self.head(self.norm(self.encoder(h))[:, 0])  # (B, num_classes) logits on [CLS]
