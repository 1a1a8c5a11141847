"""The DiT: shapes in both conditioning modes, the size registry, CFG null tokens/dropout, save/load."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from training.conditions import null_index
from training.dit import DIT_MODELS, create_dit, dit_config, load_dit, save_dit

ALL = ("label", "skin_tone", "sex")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def official_dit_parameters(depth: int, hidden: int, patch: int, channels: int, num_classes: int,
                            tokens: int = 0) -> int:
    """Parameter count of facebookresearch/DiT `models.py` (learned sigma); `tokens` adds its frozen pos_embed."""
    h = hidden
    embed = patch * patch * channels * h + h + (256 * h + h + h * h + h) + (num_classes + 1) * h
    block = (3 * h * h + 3 * h) + (h * h + h) + (4 * h * h + 4 * h) + (4 * h * h + h) + (6 * h * h + 6 * h)
    final = (2 * h * h + 2 * h) + (h * patch * patch * 2 * channels + patch * patch * 2 * channels)
    return embed + depth * block + final + tokens * h


def test_formula_reproduces_the_published_dit_xl2_count() -> None:
    # DiT-XL/2 on 32x32 latents, ImageNet's 1000 classes: 675,129,632 parameters (the official script's printout)
    assert official_dit_parameters(28, 1152, 2, 4, 1000, tokens=256) == 675_129_632


@pytest.mark.parametrize("name", ["DiT-S/2", "DiT-B/4"])
def test_adaln_matches_the_dit_paper_architecture_parameter_for_parameter(name: str) -> None:
    model = create_dit(name, conditioning="adaln", conditions=("label",))
    config = model.config
    expected = official_dit_parameters(config.depth, config.hidden_size, config.patch_size, 4, num_classes=2)
    assert sum(p.numel() for p in model.parameters()) == expected


def test_registry_sizes() -> None:
    assert len(DIT_MODELS) == 15
    real = dit_config("DiT-L/4")  # the Class-N-Diff real profile (paper §III-B)
    assert (real.depth, real.hidden_size, real.num_heads, real.patch_size) == (24, 1024, 16, 4)
    assert (dit_config("DiT-XL/8").depth, dit_config("DiT-S/4").hidden_size, dit_config("DiT-B/2").num_heads) == (
        28, 384, 12)
    with pytest.raises(KeyError, match="DiT-L/4"):
        dit_config("DiT-M/4")
    with pytest.raises(ValueError, match="divisible"):
        dit_config("DiT-T/4", input_size=(6, 8))


@pytest.mark.parametrize("mode", ["cross_attn", "adaln"])
def test_output_shape_and_zero_init(mode: str) -> None:
    model = create_dit("DiT-T/2", in_channels=3, input_size=(8, 12), conditioning=mode, conditions=ALL)
    x, t = torch.randn(5, 3, 8, 12), torch.tensor([0, 1, 500, 998, 999])
    out = model(x, t, {"label": torch.tensor([0, 1, 0, 1, 2])})
    assert out.shape == (5, 6, 8, 12)  # 2C: ε and the learned-variance interpolation
    assert float(out.detach().abs().max()) == 0.0  # DiT's zero-initialised output layer


def _randomised(mode: str, dropout: float = 0.1) -> torch.nn.Module:
    """A DiT with every weight non-zero (the zero-initialised layers too); the same weights for every `dropout`."""
    torch.manual_seed(0)
    model = create_dit("DiT-T/2", in_channels=4, input_size=(8, 8), conditioning=mode, conditions=ALL,
                       class_dropout_prob=dropout)
    with torch.no_grad():
        for p in model.parameters():
            if p.abs().sum() == 0:
                p.normal_(0, 0.05)
    return model


@pytest.mark.parametrize("mode", ["cross_attn", "adaln"])
@torch.no_grad()
def test_every_condition_and_the_timestep_change_the_output(mode: str) -> None:
    model = _randomised(mode).eval()
    x, t = torch.randn(2, 4, 8, 8), torch.tensor([100, 100])
    base = {"label": torch.tensor([0, 0]), "skin_tone": torch.tensor([0, 0]), "sex": torch.tensor([0, 0])}
    ref = model(x, t, base)
    for name, value in [("label", 1), ("skin_tone", 2), ("sex", 1)]:
        changed = model(x, t, base | {name: torch.tensor([value, value])})
        assert float((changed - ref).abs().mean()) > 1e-4, name
    assert float((model(x, t + 400, base) - ref).abs().mean()) > 1e-4
    # a condition left out of the mapping is its null token
    missing = {"label": base["label"], "skin_tone": base["skin_tone"]}
    explicit = base | {"sex": torch.full((2,), null_index("sex"))}
    torch.testing.assert_close(model(x, t, missing), model(x, t, explicit), rtol=0, atol=0)


@pytest.mark.parametrize("mode", ["cross_attn", "adaln"])
@torch.no_grad()
def test_cfg_dropout_p1_nulls_every_condition_and_p0_none(mode: str) -> None:
    x, t = torch.randn(4, 4, 8, 8), torch.tensor([3, 30, 300, 900])
    cond = {"label": torch.tensor([0, 1, 1, 0]), "skin_tone": torch.tensor([0, 1, 2, 1]),
            "sex": torch.tensor([1, 0, 1, 0])}
    nulls = {name: torch.full((4,), null_index(name)) for name in ALL}
    reference = _randomised(mode).eval()
    expected_null, expected_cond = reference(x, t, nulls), reference(x, t, cond)
    assert float((expected_null - expected_cond).abs().mean()) > 1e-4
    torch.testing.assert_close(_randomised(mode, 1.0).train()(x, t, cond), expected_null, rtol=0, atol=0)
    torch.testing.assert_close(_randomised(mode, 0.0).train()(x, t, cond), expected_cond, rtol=0, atol=0)


def test_cfg_dropout_rate_is_per_condition_and_independent() -> None:
    model = create_dit("DiT-T/2", input_size=(8, 8), conditions=ALL, class_dropout_prob=0.1).train()
    n = 20_000
    cond = {"label": torch.ones(n, dtype=torch.long), "skin_tone": torch.ones(n, dtype=torch.long),
            "sex": torch.ones(n, dtype=torch.long)}
    out = model.drop_conditions(cond, n, torch.device("cpu"), torch.Generator().manual_seed(0))
    dropped = {name: out[name] == null_index(name) for name in ALL}
    for name in ALL:  # binomial(20000, 0.1): sd 0.0021, so ±0.01 is ~5 sd
        assert abs(float(dropped[name].double().mean()) - 0.1) < 0.01, name
    both = float((dropped["label"] & dropped["skin_tone"]).double().mean())
    assert abs(both - 0.01) < 0.004  # independent draws: 0.1 x 0.1
    # not dropped -> unchanged value
    assert bool((out["label"][~dropped["label"]] == 1).all())
    model.eval()
    assert bool((model.drop_conditions(cond, n, torch.device("cpu"))["label"] == 1).all())


@pytest.mark.parametrize(("mode", "calls_per_block"), [("cross_attn", 2), ("adaln", 1)])
def test_attention_goes_through_sdpa(mode: str, calls_per_block: int, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    real = F.scaled_dot_product_attention

    def counting(*args, **kwargs):  # noqa: ANN002, ANN003
        calls.append(args[1].shape[2])  # number of key tokens
        return real(*args, **kwargs)

    monkeypatch.setattr(F, "scaled_dot_product_attention", counting)
    model = create_dit("DiT-T/2", input_size=(8, 8), conditioning=mode, conditions=("label", "skin_tone"))
    model(torch.randn(2, 4, 8, 8), torch.tensor([1, 2]), {"label": torch.tensor([0, 1])})
    assert len(calls) == calls_per_block * model.config.depth
    if mode == "cross_attn":  # self-attention over 16 patches, cross-attention over t + 2 condition tokens
        assert sorted(set(calls)) == [3, 16]


def test_save_and_load_round_trip(tmp_path) -> None:  # noqa: ANN001
    model = _randomised("cross_attn").eval()
    save_dit(model, tmp_path / "dit.safetensors", tmp_path / "dit_config.json")
    loaded = load_dit(tmp_path / "dit.safetensors").eval()  # config from the safetensors metadata alone
    assert loaded.config == model.config
    x, t = torch.randn(2, 4, 8, 8), torch.tensor([5, 700])
    cond = {"label": torch.tensor([1, 0])}
    torch.testing.assert_close(loaded(x, t, cond), model(x, t, cond), rtol=0, atol=0)
    assert load_dit(tmp_path / "dit.safetensors", tmp_path / "dit_config.json").config == model.config
