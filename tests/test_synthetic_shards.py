"""The synthetic-shards stage: plan met after filtering, provenance, resumption, WebDataset readability."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
import webdataset as wds
from torch import nn

from pipelines.generation_plan import cell_name
from pipelines.synthetic_shards import CellSampler, SyntheticShardsParams, read_shard, run_synthetic_shards
from training.latent_shards import read_latent_set, shard_paths
from training.latent_shards.stream import StreamSettings, latent_loader
from training.sampling import SamplingParams, sample_latents

LATENT = (4, 4, 4)
CONDITIONS = ("label", "skin_tone")


class CountingEps(nn.Module):
    """A small random conditional eps-model (2C outputs) that counts its forward calls; optionally fails."""

    def __init__(self, fail_at_call: int | None = None) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.inp, self.out = nn.Conv2d(4, 8, 3, padding=1), nn.Conv2d(8, 8, 3, padding=1)
        self.label, self.tone, self.time = nn.Embedding(3, 8), nn.Embedding(4, 8), nn.Embedding(1000, 8)
        self.calls, self.fail_at_call = 0, fail_at_call

    def forward(self, x, t, cond):
        self.calls += 1
        if self.calls == self.fail_at_call:
            raise RuntimeError("simulated crash")
        h = self.inp(x) + (self.label(cond["label"]) + self.tone(cond["skin_tone"]) + self.time(t))[:, :, None, None]
        return self.out(torch.tanh(h))


def decode(latents: torch.Tensor) -> torch.Tensor:
    """A fixed 'VAE decoder': 4x4x4 latents -> 3x8x8 images in [-1, 1]."""
    return torch.tanh(nn.functional.interpolate(latents[:, :3], scale_factor=2, mode="nearest"))


def classify(latents: torch.Tensor) -> torch.Tensor:
    """A fixed 'joint classifier': P(malignant) rises with the latent's mean relative to its magnitude."""
    return torch.sigmoid(3.0 * latents.mean(dim=(1, 2, 3)) / latents.abs().mean(dim=(1, 2, 3)))


def write_plan(path, to_generate: dict[tuple[int, str], int]):
    rows = [{"cell": cell_name(label, group, None), "label": label, "skin_tone_group": group, "sex": None,
             "real": 10, "target": 10 + n, "to_generate": n} for (label, group), n in to_generate.items()]
    pd.DataFrame(rows).to_parquet(path)
    return path


PLAN = {(0, "A"): 0, (1, "B"): 4, (1, "C"): 7, (0, "C"): 5}
PARAMS = SyntheticShardsParams(samples_per_shard=3, sampling=SamplingParams(
    sampler="ddim", steps=3, batch_size=4, seed=7, guidance={"label": 2.0}, filter_threshold=0.5, cap_factor=4.0))


def run(tmp_path, model, out="out", params=PARAMS, plan=PLAN):
    plan_path = write_plan(tmp_path / "plan.parquet", plan)
    return run_synthetic_shards(params, plan_path, tmp_path / out, model, decode, "dvc-md5-1234", LATENT,
                                classify=classify, condition_names=CONDITIONS)


def all_samples(shards_dir):
    return [s for tar in sorted(shards_dir.glob("*.tar")) for s in read_shard(tar)]


def test_plan_is_met_after_filtering_and_samples_carry_provenance(tmp_path):
    model = CountingEps()
    outputs = run(tmp_path, model)
    cells = {c["cell"]: c for c in outputs.summary["cells"]}
    assert set(cells) == {"malignant_B", "malignant_C", "benign_C"}  # the cell asking for 0 is skipped
    for (label, group), n in PLAN.items():
        if n:
            cell = cells[cell_name(label, group, None)]
            assert cell["kept"] == n and cell["plan_met"] and cell["draws"] == cell["kept"] + cell["dropped"]
    assert outputs.summary["dropped"] > 0 and outputs.summary["plan_met"]
    samples = all_samples(outputs.shards)
    assert len(samples) == 16 == outputs.summary["kept"]
    manifest = json.loads(outputs.manifest.read_text())
    assert manifest["count"] == 16 and len(manifest["shards"]) == outputs.summary["shards"] == 2 + 3 + 2
    for sample in samples:
        a, p = sample.attributes, sample.attributes["provenance"]
        assert sample.latent.dtype == np.float16 and sample.latent.shape == LATENT
        assert sample.image.shape == (8, 8, 3) and sample.image.dtype == np.uint8
        assert p["model_version"] == "dvc-md5-1234" and p["sampler"] == "ddim" and p["steps"] == 3
        assert p["guidance"] == {"label": 2.0, "skin_tone": 1.0}
        assert p["condition"] == {"label": a["label"], "skin_tone": "ABC".index(a["skin_tone_group"])}
        # the filter: the classifier's probability for the intended label passed the threshold
        probability = classify(torch.from_numpy(sample.latent.astype(np.float32))[None])[0].item()
        assert (probability if a["label"] == 1 else 1 - probability) >= 0.5 - 1e-3
        assert p["label_probability"] >= 0.5
    # any sample regenerates alone from the seed in its provenance
    sample = samples[5]
    p = sample.attributes["provenance"]
    alone, _ = sample_latents(model, {k: torch.tensor([v]) for k, v in p["condition"].items()}, [p["seed"]],
                              LATENT, PARAMS.sampling)
    np.testing.assert_allclose(alone[0].numpy(), sample.latent.astype(np.float32), rtol=1e-3, atol=1e-3)  # fp16


def test_cap_stops_generation_and_reports_the_plan_unmet(tmp_path):
    strict = SyntheticShardsParams(samples_per_shard=3, sampling=PARAMS.sampling.model_copy(
        update={"filter_threshold": 0.999, "cap_factor": 2.0}))
    outputs = run(tmp_path, CountingEps(), params=strict, plan={(1, "C"): 4})
    (cell,) = outputs.summary["cells"]
    assert cell["draws"] == 8 and cell["kept"] == 0 and cell["dropped"] == 8 and not cell["plan_met"]
    assert outputs.summary["shards"] == 0  # nothing kept: a record of the draws, no tar
    assert not outputs.summary["plan_met"]


def test_empty_plan_generates_nothing(tmp_path):
    model = CountingEps()
    outputs = run(tmp_path, model, plan={(1, "C"): 0, (0, "A"): 0})
    assert model.calls == 0 and outputs.summary["kept"] == 0 and outputs.summary["plan_met"]
    assert json.loads(outputs.manifest.read_text())["shards"] == []


def test_crash_resumes_without_regenerating_finished_shards(tmp_path, monkeypatch):
    # reference: an uninterrupted run, with the model's call count after each shard
    calls_after_shard: list[int] = []
    fill_shard = CellSampler.fill_shard

    def recording(self, *args):
        result = fill_shard(self, *args)
        calls_after_shard.append(self.model.calls)
        return result

    monkeypatch.setattr(CellSampler, "fill_shard", recording)
    full_model = CountingEps()
    full = run(tmp_path, full_model, out="full")
    monkeypatch.setattr(CellSampler, "fill_shard", fill_shard)
    reference = {p.name: p.read_bytes() for p in full.shards.glob("*.tar")}

    # crash in the middle of the fourth shard
    crash_at = calls_after_shard[2] + 2
    assert crash_at < calls_after_shard[3]
    with pytest.raises(RuntimeError, match="simulated crash"):
        run(tmp_path, CountingEps(fail_at_call=crash_at), out="crashed")
    shards = tmp_path / "crashed" / "shards"
    finished = sorted(shards.glob("*.tar"))
    assert [p.name for p in finished] == ["synthetic-000000.tar", "synthetic-000001.tar", "synthetic-000002.tar"]
    stamps = {p.name: p.stat().st_mtime_ns for p in finished}

    resumed_model = CountingEps()
    resumed = run(tmp_path, resumed_model, out="crashed")
    assert resumed.summary["shards_resumed"] == 3
    assert resumed_model.calls == full_model.calls - calls_after_shard[2]
    assert {p.name: p.stat().st_mtime_ns for p in finished} == stamps  # not rewritten
    assert {p.name: p.read_bytes() for p in resumed.shards.glob("*.tar")} == reference
    assert resumed.summary["kept"] == full.summary["kept"] and resumed.summary["dropped"] == full.summary["dropped"]

    # nothing left to do: a rerun calls the model 0 times; other settings start over
    again = CountingEps()
    run(tmp_path, again, out="crashed")
    assert again.calls == 0
    other = CountingEps()
    reseeded = SyntheticShardsParams(samples_per_shard=3, sampling=PARAMS.sampling.model_copy(update={"seed": 8}))
    run(tmp_path, other, out="crashed", params=reseeded)
    assert other.calls > 0


def test_shards_read_with_webdataset_and_the_latent_shard_readers(tmp_path):
    outputs = run(tmp_path, CountingEps(), plan={(1, "C"): 5, (0, "B"): 2})
    urls = [str(p) for p in sorted(outputs.shards.glob("*.tar"))]
    rows = list(wds.WebDataset(urls, shardshuffle=False).decode("rgb8"))
    assert len(rows) == 7
    for row in rows:
        assert row["mean.npy"].shape == LATENT and row["mean.npy"].dtype == np.float16
        assert not row["std.npy"].any() and row["png"].shape == (8, 8, 3)
        assert row["json"]["synthetic"] and row["json"]["split"] == "synthetic"
    # the readers of the real latent shards: in-memory LatentSet and the training stream
    paths = shard_paths(outputs.shards, "synthetic")
    assert [p.name for p in paths] == ["synthetic-000000.tar", "synthetic-000001.tar", "synthetic-000002.tar"]
    latents = read_latent_set(paths)
    assert len(latents) == 7 and latents.std is None
    assert latents.conditions["label"].tolist() == [1] * 5 + [0] * 2
    assert latents.conditions["skin_tone"].tolist() == [2] * 5 + [1] * 2  # C, B
    assert latents.conditions["sex"].tolist() == [2] * 7  # the plan fixes no sex: null token
    stored = np.stack([s.latent for p in paths for s in read_shard(p)]).astype(np.float32)
    np.testing.assert_array_equal(latents.mean.numpy(), stored)
    (batch,) = list(latent_loader(paths, StreamSettings(batch_size=8, shuffle_buffer=0)))
    assert sorted(batch["key"]) == sorted(latents.keys) and batch["mean"].shape == (7, *LATENT)


def test_a_model_without_the_plans_conditions_is_refused(tmp_path):
    plan_path = write_plan(tmp_path / "plan.parquet", {(1, "C"): 3})
    with pytest.raises(ValueError, match=r"fix \['skin_tone'\]"):
        run_synthetic_shards(PARAMS, plan_path, tmp_path / "out", CountingEps(), decode, "v", LATENT,
                             classify=classify, condition_names=("label",))
