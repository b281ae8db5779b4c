"""The dispatch point: ``impl`` arguments, the environment override and the CPU fallback."""

import pytest
import torch

from mambajepa.ssm import Mamba1, Mamba2, dispatch, selective_scan, ssd
from mambajepa.ssm.dispatch import ENV_VAR, resolve_impl


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.setattr(dispatch, "_warned", set())


def _spy(monkeypatch, module, name):
    calls = []
    original = getattr(module, name)

    def wrapped(*args, **kwargs):
        calls.append(name)
        return original(*args, **kwargs)

    monkeypatch.setattr(module, name, wrapped)
    return calls


@pytest.mark.parametrize(
    "layer, module, names",
    [
        (
            lambda impl: Mamba1(8, d_state=2, impl=impl),
            selective_scan,
            ("selective_scan_ref", "selective_scan_chunked"),
        ),
        (lambda impl: Mamba2(8, d_state=2, headdim=4, impl=impl), ssd, ("ssd_ref", "ssd_chunked")),
    ],
    ids=["mamba1", "mamba2"],
)
def test_environment_variable_forces_the_implementation(monkeypatch, layer, module, names):
    ref_calls = _spy(monkeypatch, module, names[0])
    chunked_calls = _spy(monkeypatch, module, names[1])
    x = torch.randn(1, 5, 8)
    layer("auto")(x)  # auto on CPU: chunked
    assert (len(ref_calls), len(chunked_calls)) == (0, 1)
    monkeypatch.setenv(ENV_VAR, "ref")
    layer("chunked")(x)  # the environment wins over the constructor argument
    assert (len(ref_calls), len(chunked_calls)) == (1, 1)
    monkeypatch.setenv(ENV_VAR, "chunked")
    layer("ref")(x)
    assert (len(ref_calls), len(chunked_calls)) == (1, 2)


def test_fused_falls_back_on_cpu_with_one_warning():
    with pytest.warns(RuntimeWarning, match="fused SSM kernels unavailable"):
        assert resolve_impl("fused", "cpu") == "chunked"
    assert resolve_impl("fused", "cpu") == "chunked"  # second call: no new warning needed
    assert resolve_impl("auto", "cpu") == "chunked"


def test_bad_names_are_rejected(monkeypatch):
    with pytest.raises(ValueError, match="impl='fast'"):
        resolve_impl("fast")
    monkeypatch.setenv(ENV_VAR, "turbo")
    with pytest.raises(ValueError, match="turbo"):
        resolve_impl("auto")
