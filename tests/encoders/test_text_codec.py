"""Mamba-3 text encoder and decoder: padding, pooling, teacher forcing, recurrent generation."""

import pytest
import torch
import torch.nn.functional as F

from mambajepa.core.errors import ConfigError, ShapeError
from mambajepa.encoders.text import TextDecoder, TextDecoderConfig, TextEncoder, TextEncoderConfig
from mambajepa.registry import load_pretrained
from mambajepa.ssm.mamba3 import Mamba3

SMALL = dict(
    vocab_size=50,
    d_model=32,
    n_layer=2,
    embed_dim=16,
    ssm_cfg={"layer": "Mamba3", "d_state": 8, "headdim": 8},
)


def perturb(model, scale=0.2):
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * scale)
    return model.eval()


@pytest.fixture
def encoder():
    torch.manual_seed(0)
    return perturb(TextEncoder(TextEncoderConfig(**SMALL)))


@pytest.fixture
def decoder():
    torch.manual_seed(0)
    return perturb(TextDecoder(TextDecoderConfig(**SMALL, prefix_len=3)))


def ids(B=3, L=7, seed=1, vocab=50):
    return torch.randint(0, vocab, (B, L), generator=torch.Generator().manual_seed(seed))


def test_encoder_is_mamba3_and_pools_real_tokens_only(encoder):
    assert isinstance(encoder.backbone.layers[0].mixer, Mamba3)
    x = ids()
    mask = torch.ones_like(x)
    mask[1, 4:] = 0
    mask[2, 2:] = 0
    out = encoder(x, mask)
    assert out.shape == (3, 16)
    # right padding: any pad ids, and the text alone without padding, give the same embedding
    garbage = x.clone()
    garbage[mask == 0] = 7
    torch.testing.assert_close(encoder(garbage, mask), out)
    torch.testing.assert_close(encoder(x[1:2, :4]), out[1:2], atol=1e-5, rtol=1e-5)
    # the pooled value is the masked mean of the token features, projected
    feats = encoder.token_features(x)
    manual = encoder.proj((feats * mask[..., None]).sum(1) / mask.sum(1, keepdim=True))
    torch.testing.assert_close(out, manual)
    # the padding really is excluded: counting it changes the result
    assert (encoder(x) - out)[1].abs().max() > 1e-3


def test_encoder_checks_inputs(encoder):
    with pytest.raises(ShapeError, match="attention_mask"):
        encoder(ids(), torch.ones(3, 6))
    with pytest.raises(ShapeError, match="input_ids"):
        encoder(torch.randn(3, 7))
    with pytest.raises(ConfigError, match="embed_dim"):
        TextEncoderConfig(embed_dim=0)


def test_teacher_forcing_logits_and_loss(decoder):
    emb = torch.randn(3, 16)
    x = ids()
    logits = decoder(emb, x)
    assert logits.shape == (3, 7, decoder.lm.config.padded_vocab_size)
    # position i sees only the prefix and ids < i: changing the last id changes no logit
    y = x.clone()
    y[:, -1] = (y[:, -1] + 1) % 50
    torch.testing.assert_close(decoder(emb, y), logits)
    # ... while changing the embedding changes the first logit
    assert (decoder(emb + 1, x)[:, 0] - logits[:, 0]).abs().max() > 1e-3
    mask = torch.ones_like(x)
    mask[0, 5:] = 0
    want = F.cross_entropy(logits[mask.bool()], x[mask.bool()])
    torch.testing.assert_close(decoder.loss(emb, x, mask), want)
    emb.requires_grad_(True)
    decoder.loss(emb, x, mask).backward()
    assert emb.grad.abs().sum() > 0


def test_greedy_generate_equals_argmax_of_full_forward(decoder):
    emb = torch.randn(2, 16)
    out = decoder.generate(emb, max_new_tokens=6)
    assert out.shape == (2, 6)
    seq = torch.zeros(2, 0, dtype=torch.long)
    for _ in range(6):
        # forward predicts each given id; a placeholder after seq reads off the next-token logits
        logits = decoder(emb, torch.cat([seq, torch.zeros(2, 1, dtype=torch.long)], 1))[:, -1, :50]
        seq = torch.cat([seq, logits.argmax(-1, keepdim=True)], 1)
    assert torch.equal(out, seq)


def test_generate_stops_at_eos_and_samples_within_vocabulary(decoder):
    emb = torch.randn(2, 16)
    greedy = decoder.generate(emb, max_new_tokens=5)
    eos = int(greedy[0, 1])
    stopped = decoder.generate(emb, max_new_tokens=5, eos=eos)
    assert stopped[0, 1] == eos and torch.equal(stopped[:, :2], greedy[:, :2])
    finished_at = [int((row == eos).nonzero()[0]) if (row == eos).any() else None for row in stopped]
    for row, first in zip(stopped, finished_at):
        if first is not None:
            assert (row[first:] == eos).all()
    g = torch.Generator().manual_seed(0)
    sampled = decoder.generate(emb, max_new_tokens=20, temperature=1.5, top_k=0, generator=g)
    assert sampled.max() < 50 and sampled.shape == (2, 20)
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    a = decoder.generate(emb, 8, temperature=1.0, top_k=5, generator=g1)
    assert torch.equal(a, decoder.generate(emb, 8, temperature=1.0, top_k=5, generator=g2))
    assert decoder.generate(emb, 0).shape == (2, 0)
    with pytest.raises(ConfigError, match="temperature"):
        decoder.generate(emb, 3, temperature=-1.0)


@pytest.mark.parametrize("cls", [TextEncoder, TextDecoder])
def test_save_and_load_pretrained_round_trip(tmp_path, cls, encoder, decoder):
    model = encoder if cls is TextEncoder else decoder
    model.save_pretrained(tmp_path)
    x = ids()
    for loaded in (cls.from_pretrained(tmp_path), load_pretrained(tmp_path)):
        assert loaded.config == model.config
        if cls is TextEncoder:
            torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)
        else:
            emb = torch.randn(3, 16)
            torch.testing.assert_close(loaded(emb, x), model(emb, x), rtol=0, atol=0)
            assert loaded.lm.lm_head.weight is loaded.lm.backbone.embedding.weight
