"""MambaLMHeadModel: recurrent generation vs re-running the full forward, EOS, sampling, saving."""

import pytest
import torch

from mambajepa.ssm import MambaLMConfig, MambaLMHeadModel


def _model(layer="Mamba1", seed=0):
    torch.manual_seed(seed)
    ssm_cfg = {"layer": layer, "d_state": 4, "chunk_size": 4}
    if layer == "Mamba2":
        ssm_cfg["headdim"] = 8
    return MambaLMHeadModel(MambaLMConfig(d_model=16, n_layer=2, vocab_size=29, ssm_cfg=ssm_cfg)).eval()


@pytest.mark.parametrize("layer", ["Mamba1", "Mamba2"])
def test_greedy_generate_equals_argmax_of_full_forward_reruns(layer):
    model = _model(layer)
    prompt = torch.randint(0, 29, (3, 5))
    out = model.generate(prompt, max_new_tokens=8)
    assert out.shape == (3, 13)
    seq = prompt
    with torch.no_grad():
        for _ in range(8):
            logits = model(seq).logits[:, -1, :29]
            seq = torch.cat([seq, logits.argmax(-1, keepdim=True)], dim=1)
    torch.testing.assert_close(out, seq)


def test_eos_pads_finished_sequences_and_stops_early():
    model = _model()
    prompt = torch.randint(0, 29, (2, 4))
    free = model.generate(prompt, max_new_tokens=10)
    eos = int(free[0, 4])  # the first token sequence 0 generates
    out = model.generate(prompt, max_new_tokens=10, eos_token_id=eos)
    assert (out[0, 4:] == eos).all()
    hits = (free[1, 4:] == eos).nonzero()
    stop = int(hits[0]) + 1 if len(hits) else 10
    torch.testing.assert_close(out[1, 4 : 4 + stop], free[1, 4 : 4 + stop])
    assert out.shape[1] == 4 + stop  # nothing generated after both sequences finished


def test_top_k_sampling_stays_in_top_k_and_is_reproducible():
    model = _model()
    prompt = torch.randint(0, 29, (4, 3))
    out = model.generate(
        prompt, max_new_tokens=6, temperature=1.5, top_k=3, generator=torch.Generator().manual_seed(1)
    )
    again = model.generate(
        prompt, max_new_tokens=6, temperature=1.5, top_k=3, generator=torch.Generator().manual_seed(1)
    )
    torch.testing.assert_close(out, again)
    with torch.no_grad():
        logits = model(out[:, :-1]).logits[:, 2:, :29]  # logits that chose each new token
    top3 = logits.topk(3, dim=-1).indices
    assert (top3 == out[:, 3:, None]).any(-1).all()
    assert (out < 29).all()  # padded vocabulary rows are never sampled
    assert model.backbone.embedding.weight.shape[0] == 32


def test_tied_head_keys_and_save_load_roundtrip(tmp_path):
    model = _model("Mamba2")
    assert model.lm_head.weight is model.backbone.embedding.weight
    assert "lm_head.weight" in model.state_dict() and "backbone.norm_f.weight" in model.state_dict()
    model.save_pretrained(tmp_path / "lm")
    loaded = MambaLMHeadModel.from_pretrained(tmp_path / "lm").eval()
    assert loaded.lm_head.weight is loaded.backbone.embedding.weight
    ids = torch.randint(0, 29, (2, 7))
    torch.testing.assert_close(loaded(ids).logits, model(ids).logits)
