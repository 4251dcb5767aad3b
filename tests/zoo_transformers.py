"""Small transformer audio models for the coverage zoo: the attention patterns users meet."""

from __future__ import annotations

import torch
from torch import nn
from zoo_patterns import sinusoids


class SelfAttention(nn.Module):
    """Attention with separate q/k/v Linear layers and a head reshape read from attributes."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.all_head_size = num_heads * self.head_dim
        self.query = nn.Linear(dim, self.all_head_size)
        self.key = nn.Linear(dim, self.all_head_size)
        self.value = nn.Linear(dim, self.all_head_size)
        self.out = nn.Linear(self.all_head_size, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape

        def heads(h: torch.Tensor) -> torch.Tensor:
            return h.view(b, t, self.num_heads, self.head_dim).transpose(1, 2)

        q, k, v = heads(self.query(x)), heads(self.key(x)), heads(self.value(x))
        att = torch.softmax(q @ k.transpose(-1, -2) / self.head_dim**0.5, dim=-1)
        return self.out((att @ v).transpose(1, 2).reshape(b, t, self.all_head_size))


class _ViTBlock(nn.Module):
    """Pre-norm block: attention and MLP, each with a residual add and a layer-scale vector."""

    def __init__(self, dim: int, heads: int, mlp: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = SelfAttention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, mlp)
        self.fc2 = nn.Linear(mlp, dim)
        self.gamma = nn.Parameter(torch.full((dim,), 0.5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.gamma * self.fc2(torch.nn.functional.gelu(self.fc1(self.norm2(x))))


class SpectrogramViT(nn.Module):
    """Spectrogram transformer (AST-style): patch conv, class token, learned positions."""

    def __init__(self, dim: int = 32, heads: int = 4, depth: int = 2, n_classes: int = 5) -> None:
        super().__init__()
        self.patch = nn.Conv2d(1, dim, 4, stride=4)
        self.cls_token = nn.Parameter(torch.randn(1, 1, dim) * 0.1)
        self.pos_embed = nn.Parameter(torch.randn(1, 17, dim) * 0.1)
        self.blocks = nn.ModuleList(_ViTBlock(dim, heads, 2 * dim) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, n_classes)

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        x = self.patch(spec).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embed
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x)[:, 0])


class SpeechEncoder(nn.Module):
    """wav2vec2-style: conv feature extractor, mask embedding, conv positions, transformer."""

    def __init__(self, dim: int = 32, heads: int = 4, n_out: int = 6) -> None:
        super().__init__()
        self.conv0 = nn.Conv1d(1, 16, 10, stride=5)
        self.norm0 = nn.GroupNorm(16, 16)
        self.conv1 = nn.Conv1d(16, 16, 3, stride=2)
        self.feat_norm = nn.LayerNorm(16)
        self.projection = nn.Linear(16, dim)
        self.masked_spec_embed = nn.Parameter(torch.rand(dim))
        self.pos_conv = nn.Conv1d(dim, dim, 5, padding=2, groups=dim)
        self.norm = nn.LayerNorm(dim)
        layer = nn.TransformerEncoderLayer(dim, heads, 2 * dim, dropout=0.0, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.ctc = nn.Linear(dim, n_out)

    def forward(self, wav: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        h = torch.nn.functional.gelu(self.norm0(self.conv0(wav)))
        h = torch.nn.functional.gelu(self.conv1(h)).transpose(1, 2)
        h = self.projection(self.feat_norm(h))
        if mask is not None:
            h = h.clone()
            h[mask] = self.masked_spec_embed.to(h.dtype)
        pos = torch.nn.functional.gelu(self.pos_conv(h.transpose(1, 2))).transpose(1, 2)
        return self.ctc(self.encoder(self.norm(h + pos)))


class _FeedForward(nn.Module):
    """Conformer feed-forward module: LayerNorm, expand, SiLU, project."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.up = nn.Linear(dim, hidden)
        self.down = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(torch.nn.functional.silu(self.up(self.norm(x))))


class ConformerBlock(nn.Module):
    """Macaron feed-forwards around attention and a GLU / depthwise-conv module."""

    def __init__(
        self, n_in: int = 12, dim: int = 32, heads: int = 4, n_out: int = 5, positions: bool = False
    ) -> None:
        super().__init__()
        self.inp = nn.Linear(n_in, dim)
        # a fixed sinusoidal position table stored as a buffer, added to every frame
        self.register_buffer("pos", sinusoids(64, dim)[None] if positions else None)
        self.ff1 = _FeedForward(dim, 4 * dim)
        self.attn_norm = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.conv_norm = nn.LayerNorm(dim)
        self.pw1 = nn.Conv1d(dim, 2 * dim, 1)
        self.dw = nn.Conv1d(dim, dim, 5, padding=2, groups=dim)
        self.bn = nn.BatchNorm1d(dim)
        self.pw2 = nn.Conv1d(dim, dim, 1)
        self.ff2 = _FeedForward(dim, 4 * dim)
        self.out_norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.inp(x)
        if self.pos is not None:
            h = h + self.pos[:, : h.shape[1]]
        h = h + 0.5 * self.ff1(h)
        a = self.attn_norm(h)
        h = h + self.attn(a, a, a, need_weights=False)[0]
        c = torch.nn.functional.glu(self.pw1(self.conv_norm(h).transpose(1, 2)), dim=1)
        c = self.pw2(torch.nn.functional.silu(self.bn(self.dw(c))))
        h = h + c.transpose(1, 2)
        h = h + 0.5 * self.ff2(h)
        return self.head(self.out_norm(h))


class EncoderClassifier(nn.Module):
    """Frame embedding, learned positions, nn.TransformerEncoder, mean-pooled classifier.

    With ``batch_first=True`` an eval-mode no-grad call takes PyTorch's fused fast path; with
    ``batch_first=False`` it always runs the math path.
    """

    def __init__(
        self, n_in: int = 16, dim: int = 64, heads: int = 4, ff: int = 192, batch_first: bool = True
    ) -> None:
        super().__init__()
        self.batch_first = batch_first
        self.embed = nn.Linear(n_in, dim)
        self.pos = nn.Parameter(torch.randn(1, 10, dim) * 0.1)
        layer = nn.TransformerEncoderLayer(dim, heads, ff, dropout=0.0, batch_first=batch_first)
        self.encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.head = nn.Linear(dim, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.embed(x) + self.pos
        if self.batch_first:
            h = self.encoder(h)
        else:
            h = self.encoder(h.transpose(0, 1)).transpose(0, 1)
        return self.head(h.mean(1))
