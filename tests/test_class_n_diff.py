"""Class-N-Diff joint training: the γ gate and its gradients, the schedule, the presets, the classifier, data order."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file

from training.class_n_diff.data_order import DataOrder
from training.class_n_diff.params import TrainParams
from training.class_n_diff.presets import JointConfig, preset, resolve_joint_config
from training.class_n_diff.step import StepNoise, joint_step, scale_gradient
from training.diffusion.schedule import DiffusionSchedule
from training.dit import create_dit
from training.latent_classifier import (
    LatentClassifier,
    LatentClassifierConfig,
    classification_loss,
    load_latent_classifier,
    save_latent_classifier,
)

SCHEDULE = DiffusionSchedule()


pytestmark = pytest.mark.usefixtures("one_torch_thread")


# ---------------------------------------------------------------- γ schedule and presets (METHOD.md §3)

def test_gamma_schedule_values() -> None:
    ramp = preset("setting3", steps=1000, steps_per_epoch=40)  # +0.05 every 100 steps, capped at 0.25
    assert [ramp.gamma(s) for s in (0, 99, 100, 199, 200, 299, 450, 499, 500, 999)] == [
        0.0, 0.0, 0.05, 0.05, 0.1, 0.1, 0.2, 0.2, 0.25, 0.25]
    custom = JointConfig(use_classifier=True, gamma_initial=0.1, gamma_step=0.3, gamma_period=7, gamma_max=0.6,
                         classifier_start=5)
    assert [custom.gamma(s) for s in (0, 4, 5, 11, 12, 18, 19, 100)] == [0.0, 0.0, 0.1, 0.1, 0.4, 0.4, 0.6, 0.6]
    assert not custom.classifier_active(4) and custom.classifier_active(5)


def test_presets_resolve_to_table_one() -> None:
    steps, per_epoch = 200_000, 7236  # the paper's run: 200k steps of batch 8 over 57,882 latents
    s1, s2, s3, s4, s5 = (preset(f"setting{i}", steps, per_epoch) for i in range(1, 6))
    assert not s1.use_classifier and s1.gamma(150_000) == 0.0 and not s1.classifier_active(0)
    assert (s2.lam, s2.classifier_start, s2.classifier_update_every) == (0.2, 200_000 - 2 * 7236, 1)
    assert s2.gamma(s2.classifier_start - 1) == 0.0 and s2.gamma(s2.classifier_start) == 0.25 == s2.gamma(199_999)
    assert not s2.classifier_active(s2.classifier_start - 1)
    assert (s3.lam, s3.gamma_initial, s3.gamma_step, s3.gamma_period, s3.gamma_max, s3.classifier_start,
            s3.classifier_update_every) == (0.2, 0.0, 0.05, 20_000, 0.25, 0, 3)
    assert (s4.lam, s4.classifier_update_every, s4.gamma_period) == (0.2, 1, 20_000)
    assert (s5.lam, s5.classifier_update_every, s5.gamma_period) == (0.3, 3, 20_000)
    assert [s3.classifier_steps_after(s) for s in range(7)] == [False, False, True, False, False, True, False]
    assert all(s4.classifier_steps_after(s) for s in range(5))


def test_params_override_the_preset() -> None:
    params = TrainParams(preset="setting4", steps=100, lam=0.5, gamma_max=1.0, classifier_update_every=2)
    joint = resolve_joint_config(params, steps_per_epoch=10)
    assert (joint.lam, joint.gamma_max, joint.classifier_update_every, joint.gamma_period) == (0.5, 1.0, 2, 10)
    with pytest.raises(ValueError, match="setting1"):
        resolve_joint_config(TrainParams(preset="setting1", lam=0.2), steps_per_epoch=10)


# ---------------------------------------------------------------- the joint step

def _models(seed: int = 0) -> tuple[torch.nn.Module, LatentClassifier]:
    torch.manual_seed(seed)
    dit = create_dit("DiT-T/2", input_size=(8, 8), conditions=("label",), class_dropout_prob=0.0)
    with torch.no_grad():  # non-zero output layer so ε̂ depends on the weights
        dit.final_linear.weight.normal_(0, 0.02)
    classifier = LatentClassifier(LatentClassifierConfig(backbone="test_resnet", head_hidden=16)).eval()
    return dit, classifier


def _batch(seed: int = 0, t: int | None = None) -> tuple[torch.Tensor, dict, StepNoise]:
    g = torch.Generator().manual_seed(seed)
    z0 = torch.randn(6, 4, 8, 8, generator=g)
    labels = torch.tensor([0, 1, 0, 1, 1, 0])
    draws = StepNoise.draw(z0.shape, 1000, g)
    if t is not None:
        draws = StepNoise(t=torch.full((6,), t), noise=draws.noise, gate_u=draws.gate_u)
    return z0, {"label": labels}, draws


def _grads(module: torch.nn.Module) -> torch.Tensor:
    return torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).flatten() for p in module.parameters()])


def _run(dit, classifier, gamma: float, lam: float, **kw):  # noqa: ANN001, ANN003, ANN202
    z0, cond, draws = _batch(**kw)
    dit.zero_grad(set_to_none=True)
    if classifier is not None:
        classifier.zero_grad(set_to_none=True)
    result = joint_step(dit, classifier, SCHEDULE, z0, cond, draws, gamma=gamma, lam=lam)
    result.backward.backward()
    return result, _grads(dit), None if classifier is None else _grads(classifier)


def test_gamma_zero_gives_the_dit_no_classifier_gradient_and_gamma_one_gives_lambda_times_it() -> None:
    dit, classifier = _models()
    alone, g_alone, _ = _run(dit, None, gamma=0.0, lam=0.2)
    off, g_off, c_off = _run(dit, classifier, gamma=0.0, lam=0.2)
    assert not off.used_x0_hat and float(off.loss_cls) > 0
    torch.testing.assert_close(g_off, g_alone, rtol=0, atol=0)  # γ = 0: exactly the diffusion gradient
    assert float(c_off.abs().sum()) > 0  # ... while the classifier trains on z0
    on, g_on, _ = _run(dit, classifier, gamma=1.0, lam=0.2)
    assert on.used_x0_hat
    # γ = 1: the DiT's extra gradient is exactly λ ∇θ L_cls(x̂0(θ))
    z0, cond, draws = _batch()
    dit.zero_grad(set_to_none=True)
    z_t = SCHEDULE.add_noise(z0, draws.noise, draws.t)
    x0_hat = SCHEDULE.predict_x0(z_t, dit(z_t, draws.t, cond)[:, :4], draws.t)
    classification_loss(classifier(x0_hat), cond["label"]).backward()
    expected = g_alone + 0.2 * _grads(dit)
    assert float((g_on - g_alone).abs().max()) > 1e-6
    torch.testing.assert_close(g_on, expected, rtol=1e-4, atol=1e-7)
    torch.testing.assert_close(on.loss_total, on.loss_diff + 0.2 * on.loss_cls)


def test_classifier_gradient_does_not_depend_on_lambda_and_accumulation_scales_apply() -> None:
    dit, classifier = _models()
    _, g_dit1, c1 = _run(dit, classifier, gamma=1.0, lam=0.2)
    _, g_dit2, c2 = _run(dit, classifier, gamma=1.0, lam=0.3)
    torch.testing.assert_close(c1, c2, rtol=0, atol=0)
    assert float((g_dit1 - g_dit2).abs().max()) > 0
    z0, cond, draws = _batch()
    dit.zero_grad(set_to_none=True)
    classifier.zero_grad(set_to_none=True)
    joint_step(dit, classifier, SCHEDULE, z0, cond, draws, gamma=1.0, lam=0.2, dit_scale=0.5,
               classifier_scale=0.5 / 3).backward.backward()
    torch.testing.assert_close(_grads(dit), 0.5 * g_dit1, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(_grads(classifier), c1 / 6, rtol=1e-5, atol=1e-7)


def test_x0_hat_is_computed_from_the_noised_latent() -> None:
    """A DiT that predicts the true ε gives x̂0 = z0: the classifier then sees exactly the clean latent."""
    z0, cond, draws = _batch(seed=3, t=700)

    class Oracle(torch.nn.Module):
        def forward(self, z_t, t, conditions, generator=None):  # noqa: ANN001, ANN201
            return torch.cat([draws.noise, torch.zeros_like(z_t)], dim=1)

    _, classifier = _models()
    result = joint_step(Oracle(), classifier, SCHEDULE, z0, cond, draws, gamma=1.0, lam=0.2)
    with torch.no_grad():
        torch.testing.assert_close(result.logits, classifier(z0), rtol=1e-4, atol=1e-4)
    assert float(result.mse) < 1e-12


def test_a_step_on_x0_hat_leaves_no_state_in_the_classifier() -> None:
    """x̂0 at large t is far from the latents: with BatchNorm it entered the running statistics (and collapsed the
    evaluated classifier); the GroupNorm classifier keeps no statistics, so only parameters (and grads) change."""
    dit, classifier = _models()
    classifier.train()
    assert not list(classifier.buffers())
    before = {k: v.clone() for k, v in classifier.state_dict().items()}
    _run(dit, classifier, gamma=1.0, lam=0.2)
    assert all(torch.equal(before[k], v) for k, v in classifier.state_dict().items())


def test_scale_gradient_is_identity_forward_and_scales_backward() -> None:
    x = torch.randn(5, requires_grad=True)
    y = scale_gradient(x, 0.3)
    assert torch.equal(y, x)
    (y ** 2).sum().backward()
    torch.testing.assert_close(x.grad, 0.3 * 2 * x.detach())


# ---------------------------------------------------------------- latent classifier

def test_latent_classifier_shape_and_local_pretrained_weights(tmp_path, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import timm

    torch.manual_seed(7)
    source = timm.create_model("test_resnet")  # a published checkpoint: BatchNorm and an ImageNet head (fc)
    with torch.no_grad():
        for module in source.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                for tensor in (module.weight, module.bias, module.running_mean):
                    tensor.normal_()
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, str(tmp_path / "backbone.safetensors"))
    model = LatentClassifier(LatentClassifierConfig(backbone="test_resnet", head_hidden=8,
                                                    pretrained_file=str(tmp_path / "backbone.safetensors")))
    # convolutions and the norms' scales and shifts load; running statistics and the head do not
    expected = {k: v for k, v in source.state_dict().items()
                if not k.startswith("fc.") and not k.endswith(("running_mean", "running_var", "num_batches_tracked"))}
    assert model.backbone.state_dict().keys() == expected.keys()
    for name, value in expected.items():
        torch.testing.assert_close(model.backbone.state_dict()[name], value, rtol=0, atol=0)
    assert model.stem.in_channels == 4 and model.stem.out_channels == 3
    assert model(torch.randn(3, 4, 8, 8)).shape == (3,)
    save_latent_classifier(model, tmp_path / "c.safetensors", tmp_path / "c.json")
    loaded = load_latent_classifier(tmp_path / "c.safetensors").eval()
    assert loaded.config.norm == "group"
    x = torch.randn(2, 4, 8, 8)
    torch.testing.assert_close(loaded(x), model.eval()(x), rtol=0, atol=0)
    with pytest.raises(FileNotFoundError, match="missing.safetensors"):
        LatentClassifier(LatentClassifierConfig(backbone="test_resnet",
                                                pretrained_file=str(tmp_path / "missing.safetensors")))
    # a classifier saved before GroupNorm (config without `norm`) still loads, as the BatchNorm model it is
    old = LatentClassifier(LatentClassifierConfig(backbone="test_resnet", head_hidden=8, norm="batch")).eval()
    save_latent_classifier(old, tmp_path / "old.safetensors")
    old_config = {k: v for k, v in old.config.to_dict().items() if k != "norm"}
    (tmp_path / "old.json").write_text(json.dumps(old_config))
    torch.testing.assert_close(load_latent_classifier(tmp_path / "old.safetensors", tmp_path / "old.json").eval()(x),
                               old(x), rtol=0, atol=0)
    # BCE-with-logits is the paper's sigmoid + cross-entropy
    logits, labels = torch.tensor([2.0, -1.0]), torch.tensor([1, 0])
    expected = -(torch.log(torch.sigmoid(torch.tensor(2.0))) + torch.log(1 - torch.sigmoid(torch.tensor(-1.0)))) / 2
    torch.testing.assert_close(classification_loss(logits, labels), expected)


def _classifier_grads(model: LatentClassifier, z: torch.Tensor, labels: torch.Tensor, micro: int) -> torch.Tensor:
    """Gradient of the mean loss over z, accumulated over micro-batches of `micro` samples (as grad_accum does)."""
    model.zero_grad(set_to_none=True)
    for start in range(0, len(z), micro):
        loss = classification_loss(model(z[start:start + micro]), labels[start:start + micro])
        (loss * micro / len(z)).backward()
    return _grads(model)


@pytest.mark.parametrize("backbone", ["resnet10t", "resnet101"])
def test_latent_classifier_trains_at_a_per_process_batch_of_one(backbone: str) -> None:
    """The paper's global batch 8 on 8 GPUs (or grad_accum 8) gives each process 1 latent of 4x32x32; ResNet's last
    stage then runs on a 1x1 map, where BatchNorm fails ("Expected more than 1 value per channel")."""
    torch.manual_seed(0)
    model = LatentClassifier(LatentClassifierConfig(backbone=backbone, head_hidden=16)).train()
    loss = classification_loss(model(torch.randn(1, 4, 32, 32)), torch.tensor([1]))
    loss.backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and bool(torch.isfinite(g).all()) for g in grads)
    assert float(model.stem.weight.grad.abs().sum()) > 0  # the gradient reaches the first layer


def test_latent_classifier_output_does_not_depend_on_the_batch() -> None:
    """GroupNorm normalises each sample alone: a latent's logit is the same in any batch, in train and eval mode,
    and one batch of 8 gives the gradient of 8 micro-batches of 1 (8 processes, or grad_accum 8)."""
    torch.manual_seed(0)
    model = LatentClassifier(LatentClassifierConfig(backbone="resnet10t", head_hidden=16)).train()
    assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in model.modules())
    g = torch.Generator().manual_seed(1)
    z, labels = torch.randn(8, 4, 32, 32, generator=g), torch.tensor([0, 1, 1, 0, 1, 0, 0, 1])
    batch = model(z)
    torch.testing.assert_close(torch.cat([model(z[i:i + 1]) for i in range(8)]), batch, rtol=1e-5, atol=1e-5)
    other_company = model(torch.cat([z[:2], 5 * torch.randn(6, 4, 32, 32, generator=g) + 3]))
    torch.testing.assert_close(other_company[:2], batch[:2], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(model.eval()(z), batch, rtol=1e-5, atol=1e-5)
    model.train()
    whole = _classifier_grads(model, z, labels, micro=8)
    torch.testing.assert_close(_classifier_grads(model, z, labels, micro=1), whole, rtol=1e-4, atol=1e-6)


def test_a_checkpoint_of_another_classifier_is_not_resumed() -> None:
    """A run folder written by the BatchNorm classifier (its config has no `norm`) cannot resume into GroupNorm."""
    from training.train import resume_conflicts

    classifier = LatentClassifierConfig(backbone="resnet10t").to_dict()
    current = {"params": {"lr": 1e-4}, "data": {"n_train": 8, "fingerprint": "f"}, "world_size": 1,
               "classifier": classifier}
    assert resume_conflicts(current, current) == []
    old = current | {"classifier": {k: v for k, v in classifier.items() if k != "norm"}}
    assert resume_conflicts(old, current) == ["classifier"]
    assert resume_conflicts(current | {"classifier": None}, current | {"classifier": None}) == []


# ---------------------------------------------------------------- data order

def test_data_order_is_a_function_of_seed_and_step() -> None:
    order, again = DataOrder(10, 4, seed=3), DataOrder(10, 4, seed=3)
    batches = [order.global_batch(s) for s in range(5)]  # 20 positions = exactly 2 epochs
    assert all(torch.equal(b, again.global_batch(s)) for s, b in reversed(list(enumerate(batches))))
    flat = torch.cat(batches)
    assert sorted(flat[:10].tolist()) == list(range(10)) and sorted(flat[10:].tolist()) == list(range(10))
    assert not torch.equal(flat[:10], flat[10:])  # a new permutation per epoch
    assert not torch.equal(DataOrder(10, 4, seed=4).global_batch(0), batches[0])
    parts = [order.micro_batch(2, m, r, grad_accum=2, world_size=2) for m in range(2) for r in range(2)]
    assert torch.equal(torch.cat(parts), batches[2])
