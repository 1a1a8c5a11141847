"""The `diffusion_classifier_report` stage (METHOD.md §6; issue 7, section 2).

Two setups in tmp_path: a tiny DiT saved like a training run with random weights (plumbing through the real
loaders: run folder, latent shards + manifest, lesions table, Haar codec, two tiny external sets of PNGs),
and an analytic noise model for which the true class is favoured at t < 600 and all classes tie above
(values: tuned t range, N, metrics).
"""

from __future__ import annotations

import hashlib
import json
import math
import zlib

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image, ImageOps
from sklearn.metrics import roc_auc_score

from pipelines.diffusion_classifier_report import (
    DiffusionClassifierReportParams,
    build_report,
    load_split,
    run_diffusion_classifier_report,
)
from pipelines.diffusion_classifier_report.external import check_external_table
from pipelines.diffusion_classifier_report.stage import LatentSplit, load_external
from pipelines.fairness.predictions import read_predictions
from pipelines.trained_models import TrainedRun
from training.conditions import encode
from training.diffusion.schedule import DiffusionSchedule
from training.diffusion_classifier import DiffusionClassifierParams, classify_latents
from training.diffusion_classifier.trials import trial_timesteps
from training.dit import create_dit, save_dit
from training.latent_shards import LatentSample, write_shard
from training.latent_shards.manifest import FORMAT, MANIFEST
from training.vae import CodecSpec, HaarCodec

SHAPE = (12, 4, 4)  # Haar wavelet latents of 8x8 images (12 = 4 bands x 3 colours)
TONES = ("A", "B", "C", "unknown")
SCHEDULE = DiffusionSchedule()


def lesion_table(splits: dict[str, int]) -> pd.DataFrame:
    rows = []
    for split, count in splits.items():
        for i in range(count):
            rows.append({"isic_id": f"ISIC_{split}{i:05d}", "label": int(i % 3 == 0), "split": split,
                         "skin_tone_group": TONES[i % 4], "sex": ("male", "female", None)[i % 3],
                         "age_approx": float(30 + 5 * (i % 8)), "anatom_site_general": "torso",
                         "sources": "isic2019:train|isic2020:train"})
    return pd.DataFrame(rows)


def write_shards(folder, lesions: pd.DataFrame, latents: dict[str, np.ndarray]) -> None:
    """One shard per split and the manifest, as the latent_shards stage lays them out."""
    rows = []
    for split, members in lesions.groupby("split", sort=True):
        samples = [LatentSample(key=r.isic_id, mean=latents[r.isic_id].astype(np.float16),
                                std=np.zeros(SHAPE, np.float16),
                                meta={"label": r.label, "skin_tone_group": r.skin_tone_group, "sex": r.sex})
                   for r in members.itertuples()]
        info = write_shard(folder / f"{split}-000000.tar", samples)
        rows.append({"split": split, "shard": info.path.name, "count": info.count, "sha256": info.sha256})
    manifest = {"format": FORMAT, "splits": lesions["split"].value_counts().to_dict(), "shards": rows}
    (folder / MANIFEST).write_text(json.dumps(manifest))


def write_external_sets(data_root) -> pd.DataFrame:
    """Two tiny external sets in the external_sets stage's table: "ddi" with 8x8 PNGs (the image policy is the
    identity at resolution 8) and "asan" with 12x16 PNGs (centre-cropped and resized to 8x8)."""
    generator = np.random.default_rng(7)
    rows = []
    for dataset, labels, size in (("ddi", (0, 1, 1, 0, 1, 0, 0), (8, 8)), ("asan", (0, 1, 0, 1), (12, 16))):
        folder = data_root / "raw" / dataset
        folder.mkdir(parents=True)
        for i, label in enumerate(labels):
            pixels = generator.integers(0, 256, (*size, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(folder / f"{i:06d}.png")
            rows.append({"dataset": dataset, "image_id": f"{i:06d}", "image_path": f"raw/{dataset}/{i:06d}.png",
                         "label": label, "diagnosis_raw": "x", "fitzpatrick": None,
                         "skin_tone_group": TONES[i % 4], "sex": ("female", None)[i % 2],
                         "age_approx": float("nan"), "anatom_site_general": None, "modality": "clinical",
                         "source_file": f"raw/{dataset}/meta.csv", "source_row": i + 2})
    table = pd.DataFrame(rows)
    table.to_parquet(data_root / "external_sets.parquet")
    return table


def youden_reference(labels: np.ndarray, scores: np.ndarray) -> float:
    """Brute force: the lowest distinct score maximising sensitivity + specificity - 1."""
    best, chosen = -math.inf, None
    for t in np.unique(scores):
        called = scores >= t
        j = called[labels == 1].mean() + (~called[labels == 0]).mean() - 1
        if j > best + 1e-12:
            best, chosen = j, t
    return float(chosen)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def dit_report(tmp_path_factory, one_torch_thread):
    """The stage end to end on a random tiny DiT, 12 validation and 20 test latents (capped to 16)."""
    root = tmp_path_factory.mktemp("dcr")
    torch.manual_seed(0)
    model = create_dit("DiT-T/2", in_channels=SHAPE[0], input_size=SHAPE[1:], conditions=("label", "skin_tone"))
    with torch.no_grad():  # DiT zero-initialises its output layer; random weights make the classes differ
        model.final_linear.weight.normal_(0.0, 0.05)
        model.condition_embedders["label"].weight.normal_(0.0, 1.0)
    (root / "run").mkdir()
    save_dit(model, root / "run" / "dit_ema.safetensors", root / "run" / "dit_config.json")
    lesions = lesion_table({"val": 12, "test": 20, "train": 3})
    generator = torch.Generator().manual_seed(1)
    latents = {key: torch.randn(SHAPE, generator=generator).numpy() for key in lesions["isic_id"]}
    (root / "shards").mkdir()
    write_shards(root / "shards", lesions, latents)
    lesions.to_parquet(root / "lesions.parquet")
    (root / "vae").mkdir()
    CodecSpec(kind="haar_wavelet", resolution=8).write(root / "vae" / "codec.json")
    params = DiffusionClassifierReportParams(
        classifier=DiffusionClassifierParams(n_trials=8, chunk_size=8, images_per_forward=16,
                                             counterfactual_steps=3),
        score="vote_share", max_trials_for_figures=8, gallery_per_class=2, max_test_images=16, min_trials=2,
        bootstrap_samples=20, device="cpu")
    external = write_external_sets(root / "data")
    outputs = run_diffusion_classifier_report(root / "run", root / "shards", root / "lesions.parquet", root / "vae",
                                              root / "out", params,
                                              external_sets=root / "data" / "external_sets.parquet",
                                              data_root=root / "data")
    return outputs, lesions, params, root, external


def test_predictions_follow_the_fairness_schema_one_row_per_test_latent(dit_report) -> None:
    outputs, lesions, _, _, _ = dit_report
    everything = read_predictions(outputs.predictions)  # validates
    predictions = everything[everything["test_set"] == "isic_test"]
    validation = read_predictions(outputs.validation_predictions)
    test_ids = list(lesions.loc[lesions["split"] == "test", "isic_id"])[:16]  # max_test_images, in shard order
    assert list(predictions["image_id"]) == test_ids
    assert set(everything["classifier"]) == {"diffusion_classifier"}
    assert everything["test_set"].value_counts().to_dict() == {"isic_test": 16, "ddi": 7, "asan": 4}
    assert list(validation["image_id"]) == list(lesions.loc[lesions["split"] == "val", "isic_id"])
    assert set(validation["test_set"]) == {"isic_val"}
    # subgroup columns are the lesions table's, joined by isic_id
    table = lesions.set_index("isic_id").loc[test_ids]
    assert list(predictions["label"]) == list(table["label"])
    assert list(predictions["skin_tone_group"]) == list(table["skin_tone_group"])
    assert list(predictions["sex"]) == [s if isinstance(s, str) else "unknown" for s in table["sex"]]
    assert set(predictions["source"]) == {"isic2019:train"}


def test_scores_are_the_vote_shares_of_malignant(dit_report) -> None:
    outputs, _, params, _, _ = dit_report
    predictions = read_predictions(outputs.predictions).query("test_set == 'isic_test'")
    votes = pd.read_parquet(outputs.votes)
    test_votes = votes[votes["test_set"] == "isic_test"].set_index("image_id").loc[predictions["image_id"]]
    np.testing.assert_allclose(predictions["score"], test_votes["votes_1"] / test_votes["trials_used"], rtol=1e-12)
    assert (test_votes["votes_0"] + test_votes["votes_1"] == test_votes["trials_used"]).all()
    assert (test_votes["network_evals"] == 2 * test_votes["trials_used"]).all()
    assert 0 < predictions["score"].nunique()  # the random DiT does vote, not only tie
    p = test_votes["votes_1"] / test_votes["trials_used"]
    entropy = -(p * np.log2(p.where(p > 0, 1)) + (1 - p) * np.log2((1 - p).where(p < 1, 1)))
    np.testing.assert_allclose(test_votes["vote_entropy"], entropy, atol=1e-6)
    # the full vote behind the figures computed every trial
    full = pd.read_parquet(outputs.full_vote)
    assert (full["trials_used"] == params.max_trials_for_figures).all() and len(full) == 16


def test_metrics_match_predictions_at_the_validation_threshold(dit_report) -> None:
    outputs, _, _, _, _ = dit_report
    metrics = json.loads(outputs.metrics.read_text())
    predictions = read_predictions(outputs.predictions).query("test_set == 'isic_test'")
    validation = read_predictions(outputs.validation_predictions)
    labels, scores = predictions["label"].to_numpy(), predictions["score"].to_numpy()
    threshold = metrics["threshold"]
    assert threshold == youden_reference(validation["label"].to_numpy(), validation["score"].to_numpy())
    called = scores >= threshold
    assert metrics["accuracy"] == pytest.approx(float((called == labels).mean()), abs=1e-12)
    assert metrics["sensitivity"] == pytest.approx(float(called[labels == 1].mean()), abs=1e-12)
    assert metrics["specificity"] == pytest.approx(float((~called[labels == 0]).mean()), abs=1e-12)
    assert metrics["auc"] == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    votes = pd.read_parquet(outputs.votes)
    assert metrics["mean_network_evals"] == pytest.approx(votes.loc[votes.test_set == "isic_test", "network_evals"]
                                                           .mean())
    assert metrics["images_per_s"] > 0 and metrics["n"] == 16
    tuning = json.loads(outputs.tuning.read_text())
    assert metrics["t_range"] == tuning["chosen"]["t_range"] and metrics["n_trials"] == tuning["chosen"]["n_trials"]
    assert metrics["n_trials"] in [2, 3, 4, 6, 8]  # an N the AUC tuning searches, at least min_trials
    # the AUC tuning's choice with its validation evidence: 3 trial seeds, the fewest-trials candidate
    chosen, evidence = tuning["chosen"], tuning["evidence"]
    assert chosen["target"] == "auc" and chosen["score"] == metrics["score"] == "vote_share"
    assert evidence["seeds"] == [0, 1, 2] and chosen["early_stop"] == metrics["early_stop"] == "off"
    assert chosen["n_trials"] == min(c["n_trials"] for c in evidence["candidates"] if c["n_trials"] is not None)
    assert chosen["validation_auc"] >= chosen["reference_auc"] - 0.02
    assert len(tuning["auc_by_t"]) == 10 and len(tuning["auc_by_t"][0]["vote_share_auc_by_seed"]) == 3
    # the decision is the reweighted vote: the score at the validation threshold, in every set
    decided = votes.dropna(subset=["score"])
    assert len(decided) == len(votes) and (decided["decision"] == (decided["score"] >= threshold)).all()
    assert "reweighted majority" in metrics["decision_rule"]
    assert outputs.summary["accuracy"] == metrics["accuracy"]
    assert json.loads(json.dumps(outputs.summary))["test_images"] == 16  # JSON-able for the UI metadata


def test_keys_missing_from_the_lesions_table_and_bad_params_are_named(dit_report) -> None:
    _, lesions, _, root, _ = dit_report
    with pytest.raises(ValueError, match=r"1 latent key\(s\) not in the lesions table, e.g. \['ISIC_test00003'\]"):
        load_split(root / "shards", "test", lesions[lesions["isic_id"] != "ISIC_test00003"], ["skin_tone"])
    with pytest.raises(ValueError, match="condition 'label' with the malignant class 1"):
        DiffusionClassifierReportParams(classifier=DiffusionClassifierParams(classes=(0, 2)))
    with pytest.raises(ValueError, match="min_trials 8 exceeds the trial budget classifier.n_trials 4"):
        DiffusionClassifierReportParams(classifier=DiffusionClassifierParams(n_trials=4))


def test_figures_are_pngs_and_the_gallery_has_a_row_per_case(dit_report) -> None:
    outputs, lesions, _, _, _ = dit_report
    names = {"accuracy_vs_trials.png", "retention.png", "confidence.png", "counterfactuals.png"}
    assert {p.name for p in outputs.plots.glob("*.png")} == names
    for name in names:
        with Image.open(outputs.plots / name) as image:
            image.verify()
            assert image.format == "PNG"
    gallery = pd.read_parquet(outputs.gallery)
    test_ids = list(lesions.loc[lesions["split"] == "test", "isic_id"])[:16]
    labels = lesions.set_index("isic_id").loc[test_ids, "label"]
    # malignant first (highest scores), then benign (lowest scores); ties in test order
    score = read_predictions(outputs.predictions).query("test_set == 'isic_test'").set_index("image_id")["score"]
    order = pd.DataFrame({"score": score.loc[test_ids], "position": range(16), "label": labels})
    expected = [*order[order.label == 1].sort_values(["score", "position"], ascending=[False, True]).index[:2],
                *order[order.label == 0].sort_values(["score", "position"]).index[:2]]
    assert list(gallery["image_id"]) == expected
    np.testing.assert_allclose(gallery["score"], score.loc[expected])
    assert list(gallery["counterfactual_class"]) == [0, 0, 1, 1] and list(gallery["factual_class"]) == [1, 1, 0, 0]
    with Image.open(outputs.plots / "counterfactuals.png") as image:  # 4 rows of 2.1 in at 120 dpi, cropped
        assert 0.6 * 4 * 2.1 * 120 < image.height <= 4 * 2.1 * 120
    rows = pd.read_csv(outputs.accuracy_vs_trials)
    assert list(rows["n_trials"]) == [1, 2, 4, 8]
    assert len(pd.read_csv(outputs.retention)) == 21


def reference_latents(paths: list) -> torch.Tensor:
    """The image policy written out with PIL (centre crop to a square, bicubic to 8x8), then the Haar codec."""
    images = []
    for path in paths:
        with Image.open(path) as image:
            square = ImageOps.fit(image.convert("RGB"), (8, 8), method=Image.Resampling.BICUBIC)
        images.append(np.asarray(square))
    pixels = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 127.5 - 1.0
    return HaarCodec().encode(pixels)[0]


def test_external_predictions_equal_classifying_their_latents_directly(dit_report) -> None:
    outputs, _, params, root, external = dit_report
    chosen = json.loads(outputs.tuning.read_text())["chosen"]
    vote = params.classifier.model_copy(update={"t_range": tuple(chosen["t_range"]), "n_trials": chosen["n_trials"]})
    model, _ = TrainedRun(root / "run").dit_ema()
    predictions = read_predictions(outputs.predictions)
    votes = pd.read_parquet(outputs.votes)
    scores = {}
    for dataset in ("ddi", "asan"):
        rows = external[external["dataset"] == dataset]
        latents = reference_latents([root / "data" / p for p in rows["image_path"]])
        tones = torch.tensor([encode("skin_tone", v) for v in rows["skin_tone_group"]])
        ids = [zlib.crc32(f"{dataset}/{i}".encode()) for i in rows["image_id"]]
        direct = classify_latents(model, latents, vote, conditions={"skin_tone": tones}, image_ids=ids,
                                  progress=False)
        got = predictions[predictions["test_set"] == dataset]
        assert list(got["image_id"]) == list(rows["image_id"])
        assert got["score"].tolist() == (direct.votes[:, 1] / direct.votes.sum(dim=1)).tolist()
        scores[dataset] = got["score"].tolist()
        assert list(got["label"]) == list(rows["label"]) and set(got["source"]) == {dataset}
        assert list(got["skin_tone_group"]) == list(rows["skin_tone_group"])
        assert list(got["sex"]) == [s if isinstance(s, str) else "unknown" for s in rows["sex"]]
        counted = votes[votes["test_set"] == dataset]
        assert counted["trials_used"].tolist() == direct.trials_used.tolist()
        assert counted["network_evals"].tolist() == (2 * direct.trials_used).tolist()
    assert len({*scores["ddi"], *scores["asan"]}) > 1  # the random DiT votes both ways: the equality means something
    assert outputs.summary["test_sets"] == {"isic_test": 16, "ddi": 7, "asan": 4}
    assert outputs.summary["external_sets_note"].startswith("2 set(s) from ")


def test_external_sets_are_scored_per_group_at_the_validation_threshold(dit_report) -> None:
    outputs, _, _, _, external = dit_report
    metrics = json.loads(outputs.metrics.read_text())
    predictions = read_predictions(outputs.predictions)
    groups = pd.read_parquet(outputs.groups)
    votes = pd.read_parquet(outputs.votes)
    threshold = metrics["threshold"]
    assert set(metrics["test_sets"]) == {"isic_test", "ddi", "asan", "ddi_A", "ddi_B", "ddi_C"}
    for name in ("ddi", "asan"):
        rows = predictions[predictions["test_set"] == name]
        labels, scores = rows["label"].to_numpy(), rows["score"].to_numpy()
        called = scores >= threshold
        entry = metrics["test_sets"][name]
        assert entry["n"] == len(rows) and entry["positives"] == int(labels.sum())
        assert entry["auc"] == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
        assert entry["sensitivity"] == pytest.approx(float(called[labels == 1].mean()), abs=1e-12)
        assert entry["specificity"] == pytest.approx(float((~called[labels == 0]).mean()), abs=1e-12)
        assert entry["mean_network_evals"] == pytest.approx(votes.loc[votes.test_set == name, "network_evals"].mean())
    # ddi per skin-tone group: A, B and C each hold one malignant and one or two benign images
    ddi = predictions[predictions["test_set"] == "ddi"]
    tone_rows = groups[(groups["test_set"] == "ddi") & (groups["attribute"] == "skin_tone_group")]
    assert list(tone_rows["group"]) == ["A", "B", "C", "unknown"]
    assert list(tone_rows["n"]) == [2, 2, 2, 1] and list(tone_rows["positives"]) == [1, 1, 1, 0]
    sensitivity = {g: float((ddi.loc[(ddi.skin_tone_group == g) & (ddi.label == 1), "score"] >= threshold).mean())
                   for g in "ABC"}
    assert tone_rows.set_index("group").loc[list("ABC"), "sensitivity"].tolist() == list(sensitivity.values())
    gap = max(sensitivity.values()) - min(sensitivity.values())
    assert metrics["test_sets"]["ddi"]["sensitivity_gap_skin_tone"] == pytest.approx(gap)
    assert metrics["test_sets"]["ddi_B"]["n"] == 2  # the Table III rows derived from ddi
    # the ISIC entry is the top-level one, scored by the same functions
    assert metrics["test_sets"]["isic_test"]["auc"] == pytest.approx(metrics["auc"], abs=1e-12)


def test_external_sets_switch_missing_table_and_bad_tables_are_named(dit_report, tmp_path) -> None:
    _, _, params, root, external = dit_report
    table, data_root, vae, codec = root / "data" / "external_sets.parquet", root / "data", root / "vae", HaarCodec()
    assert load_external(table, data_root, codec, vae, ["skin_tone"], params.model_copy(update={"external_sets": False})
                         ) == ({}, "off (params external_sets: false)")
    splits, note = load_external(None, data_root, codec, vae, ["skin_tone"], params)
    assert splits == {} and note == "none: the external-sets table None is not present"
    with pytest.raises(ValueError, match="given without data_root"):
        load_external(table, None, codec, vae, ["skin_tone"], params)
    capped, _ = load_external(table, data_root, codec, vae, ["skin_tone"],
                              params.model_copy(update={"max_external_images": 2}))
    assert list(capped) == ["ddi", "asan"] and [s.keys for s in capped.values()] == [["000000", "000001"]] * 2
    assert capped["asan"].latents.shape == (2, *SHAPE)
    assert capped["ddi"].conditions["skin_tone"].tolist() == [encode("skin_tone", "A"), encode("skin_tone", "B")]
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['skin_tone_group'\]"):
        check_external_table(external.drop(columns="skin_tone_group"), "ext.parquet")
    with pytest.raises(ValueError, match="image_id '000001' appears 2 times in set 'ddi'"):
        check_external_table(pd.concat([external, external.iloc[[1]]]), "ext.parquet")


class GatedOracle(torch.nn.Module):
    """eps_hat = (z - sqrt(a) mu_c) / sqrt(1 - a): the exact noise for data at mu_c, so class c's error is
    a/(1-a) mean((z0 - mu_c)^2) and the nearest mean wins every trial; for t >= gate every class gets the
    null mean (exact ties, voted to class 0), so trials there carry no signal."""

    def __init__(self, means: torch.Tensor, gate: int) -> None:
        super().__init__()
        self.register_buffer("means", torch.cat([means, means.mean(0, keepdim=True)]))
        self.gate = gate

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: dict[str, torch.Tensor]) -> torch.Tensor:
        label = torch.where(t >= self.gate, torch.full_like(cond["label"], 2), cond["label"])
        a = SCHEDULE.alphas_cumprod.to(x)[t].view(-1, 1, 1, 1)
        return (x - a.sqrt() * self.means[label]) / (1 - a).sqrt()


def oracle_split(lesions: pd.DataFrame, split: str, means: torch.Tensor, swapped: set[int]) -> LatentSplit:
    """Latents near their class mean; those at positions in `swapped` near the other class's."""
    meta = lesions[lesions["split"] == split].reset_index(drop=True)
    labels = torch.tensor(meta["label"].to_numpy())
    generator = torch.Generator().manual_seed(len(meta))
    near = torch.tensor([1 - y if i in swapped else y for i, y in enumerate(labels.tolist())])
    latents = means[near] + 0.05 * torch.randn((len(meta), *SHAPE), generator=generator)
    tones = torch.tensor([encode("skin_tone", v) for v in meta["skin_tone_group"]])
    return LatentSplit(meta=meta, latents=latents, labels=labels, conditions={"skin_tone": tones},
                       image_ids=list(range(100, 100 + len(meta))))


def test_tuning_finds_the_informative_t_range_and_the_vote_scores_as_expected(tmp_path) -> None:
    means = torch.stack([torch.full(SHAPE, -0.5), torch.full(SHAPE, 0.5)])
    lesions = lesion_table({"val": 12, "test": 15})
    swapped = {0, 4}  # test positions 0 (malignant) and 4 (benign) sit at the other class's mean
    validation = oracle_split(lesions, "val", means, set())
    test = oracle_split(lesions, "test", means, swapped)
    params = DiffusionClassifierReportParams(
        classifier=DiffusionClassifierParams(n_trials=16, chunk_size=8, images_per_forward=16,
                                             counterfactual_steps=3),
        tuning_target="accuracy", max_trials_for_figures=8, gallery_per_class=1, bootstrap_samples=0, min_trials=1)
    outputs = build_report(GatedOracle(means, gate=600), "oracle", validation, test, HaarCodec().decode,
                           tmp_path / "out", params)
    metrics = json.loads(outputs.metrics.read_text())
    tuning = json.loads(outputs.tuning.read_text())
    # per-t trial accuracy: 1 below the gate; above it every trial votes benign, right for 8 of the 12 val
    # images only, so those bins fall outside the 0.05 tolerance
    by_t = [b["trial_accuracy"] for b in tuning["trial_accuracy_by_t"]]
    assert by_t[:6] == [1.0] * 6 and all(0.3 < a < 0.95 for a in by_t[6:])
    assert metrics["t_range"] == [0.0, 0.6] and metrics["tuned"]
    assert metrics["n_trials"] == 1  # one trial below the gate is always right
    assert metrics["mean_network_evals"] == 2.0 and metrics["network_eval_reduction_vs_paper"] == 501.0
    # validation scores are 0/1 and all right -> Youden threshold 1; on test the two swapped latents are wrong
    labels = test.labels.numpy()
    scores = np.array([1 - y if i in swapped else y for i, y in enumerate(labels)], dtype=float)
    assert metrics["threshold"] == 1.0
    assert metrics["accuracy"] == pytest.approx(13 / 15)
    assert metrics["sensitivity"] == pytest.approx(4 / 5) and metrics["specificity"] == pytest.approx(9 / 10)
    assert metrics["auc"] == pytest.approx(roc_auc_score(labels, scores))
    assert read_predictions(outputs.predictions)["score"].tolist() == scores.tolist()
    # the full vote (the reference: 8 trials over the whole range): an image near the malignant mean wins exactly
    # its trials below the gate, one near the benign mean none (ties above the gate are benign's)
    below = np.array([(trial_timesteps(i, 8, seed=0, stratified=True, t_range=(0.0, 1.0),
                                       num_timesteps=1000) < 600).double().mean().item() for i in test.image_ids])
    near_malignant = np.array([1 - y if i in swapped else y for i, y in enumerate(labels)])
    full_share = near_malignant * below
    full_vote = pd.read_parquet(outputs.full_vote)
    np.testing.assert_allclose(full_vote["malignant_vote_share"], full_share)
    assert metrics["full_vote"]["t_range"] == [0.0, 1.0] and metrics["full_vote"]["n_trials"] == 8
    assert metrics["full_vote"]["vote_share_auc"] == pytest.approx(roc_auc_score(labels, full_share))
    assert metrics["full_vote"]["vote_accuracy"] == pytest.approx(
        ((np.where(full_share > 0.5, 1, 0)) == labels).mean())  # ties (share 0.5) go to benign
    gallery = pd.read_parquet(outputs.gallery)
    # the highest-scoring malignant (position 0 is swapped: score 0) and the lowest-scoring benign latent
    assert list(gallery["image_id"]) == [test.keys[3], test.keys[1]] and len(gallery) == 2
    digest = hashlib.sha256(outputs.predictions.read_bytes()).hexdigest()
    again = build_report(GatedOracle(means, gate=600), "oracle", validation, test, HaarCodec().decode,
                         tmp_path / "again", params.model_copy(update={"gallery_per_class": 0}))
    assert hashlib.sha256(again.predictions.read_bytes()).hexdigest() == digest  # deterministic
    assert not (again.plots / "counterfactuals.png").exists() and pd.read_parquet(again.gallery).empty


def test_without_tuning_the_configured_vote_is_used(tmp_path) -> None:
    """t only above the gate: every trial ties, every vote goes to benign, every score is 0."""
    means = torch.stack([torch.full(SHAPE, -0.5), torch.full(SHAPE, 0.5)])
    lesions = lesion_table({"val": 6, "test": 9})
    params = DiffusionClassifierReportParams(
        classifier=DiffusionClassifierParams(n_trials=4, t_range=(0.6, 1.0), chunk_size=4, counterfactual_steps=2),
        tune=False, max_trials_for_figures=4, gallery_per_class=0, bootstrap_samples=0)
    outputs = build_report(GatedOracle(means, gate=600), "oracle", oracle_split(lesions, "val", means, set()),
                           oracle_split(lesions, "test", means, set()), HaarCodec().decode, tmp_path, params)
    metrics = json.loads(outputs.metrics.read_text())
    assert metrics["tuned"] is False and metrics["t_range"] == [0.6, 1.0] and metrics["n_trials"] == 4
    assert metrics["tuning_network_evals"] == 0
    assert (read_predictions(outputs.predictions)["score"] == 0).all()
    assert metrics["vote_accuracy"] == pytest.approx(6 / 9)  # the benign ones (label 1 at positions 0, 3, 6)
    # 4 trials, exact stop: after 3 benign votes the fourth cannot change the majority (chunk of 4: all computed)
    assert metrics["mean_network_evals"] == 8.0
    # all validation scores 0: the only Youden candidate is 0, so every test lesion is called malignant
    assert metrics["threshold"] == 0.0 and metrics["auc"] == 0.5
    assert metrics["accuracy"] == pytest.approx(3 / 9) and metrics["sensitivity"] == 1.0


def test_external_sets_must_not_clash_with_isic_names_and_must_share_the_latent_shape(tmp_path) -> None:
    means = torch.stack([torch.full(SHAPE, -0.5), torch.full(SHAPE, 0.5)])
    lesions = lesion_table({"val": 4, "test": 4})
    validation, test = oracle_split(lesions, "val", means, set()), oracle_split(lesions, "test", means, set())
    params = DiffusionClassifierReportParams(classifier=DiffusionClassifierParams(n_trials=4, chunk_size=4),
                                             tune=False, max_trials_for_figures=4, gallery_per_class=0)
    model = GatedOracle(means, gate=600)
    with pytest.raises(ValueError, match=r"\['isic_val'\] share a name with an ISIC split"):
        build_report(model, "oracle", validation, test, HaarCodec().decode, tmp_path, params,
                     external={"isic_val": test})
    narrow = LatentSplit(meta=test.meta, latents=test.latents[:, :4], labels=test.labels, conditions=test.conditions,
                         image_ids=test.image_ids)
    with pytest.raises(ValueError, match=r"external set 'ddi': latents \(4, 4, 4\), but the test shards hold "
                                         r"\(12, 4, 4\)"):
        build_report(model, "oracle", validation, test, HaarCodec().decode, tmp_path, params, external={"ddi": narrow})


def test_error_gap_score_is_tuned_to_the_informative_window_and_decided_at_the_validation_threshold(tmp_path) -> None:
    """The gated oracle's classes differ only below t = 600, by an error gap that ranks perfectly there; above,
    the errors tie (gap 0). Forced to the error gap, the AUC tuning finds the window below the gate and one
    trial suffices; the score is sigmoid(gap / validation SD) and the decision the score at Youden's threshold."""
    means = torch.stack([torch.full(SHAPE, -0.5), torch.full(SHAPE, 0.5)])
    lesions = lesion_table({"val": 12, "test": 15})
    swapped = {0, 4}
    validation, test = oracle_split(lesions, "val", means, set()), oracle_split(lesions, "test", means, swapped)
    params = DiffusionClassifierReportParams(
        classifier=DiffusionClassifierParams(n_trials=40, chunk_size=8, images_per_forward=16, counterfactual_steps=2),
        score="error_gap", tuning_seeds=(0, 1), min_trials=1, max_trials_for_figures=8, gallery_per_class=0,
        bootstrap_samples=0)
    outputs = build_report(GatedOracle(means, gate=600), "oracle", validation, test, HaarCodec().decode,
                           tmp_path / "out", params)
    metrics, tuning = json.loads(outputs.metrics.read_text()), json.loads(outputs.tuning.read_text())
    assert [row["error_gap_auc"] for row in tuning["auc_by_t"]] == [1.0] * 6 + [0.5] * 4
    assert metrics["score"] == "error_gap" and metrics["mode"] == "average"
    assert metrics["t_range"] == [0.0, 0.6] and metrics["n_trials"] == 1 and metrics["mean_network_evals"] == 2.0
    assert tuning["evidence"]["reference_auc"] == 1.0 and tuning["evidence"]["validation_auc"] == 1.0
    votes = pd.read_parquet(outputs.votes)
    val = votes[votes["test_set"] == "isic_val"]
    gaps = val["mean_error_0"] - val["mean_error_1"]
    assert metrics["score_scale"] == pytest.approx(gaps.std(ddof=1), rel=1e-5)
    test_votes = votes[votes["test_set"] == "isic_test"]
    expected = 1 / (1 + np.exp(-(test_votes["mean_error_0"] - test_votes["mean_error_1"]) / metrics["score_scale"]))
    np.testing.assert_allclose(read_predictions(outputs.predictions)["score"], expected, rtol=1e-6)  # float32 errors
    validation_scores = read_predictions(outputs.validation_predictions)
    assert metrics["threshold"] == youden_reference(validation_scores["label"].to_numpy(),
                                                    validation_scores["score"].to_numpy())
    # the two swapped test latents rank and decide wrongly, the rest rightly
    labels = test.labels.numpy()
    assert (test_votes["decision"].to_numpy() != labels).nonzero()[0].tolist() == sorted(swapped)
    assert metrics["accuracy"] == pytest.approx(13 / 15) and metrics["auc"] == pytest.approx(
        roc_auc_score(labels, expected))
    assert "shifted average" in metrics["decision_rule"]
    # the reference (8 trials over the whole range) against the report's vote, paired over the same images
    full = pd.read_parquet(outputs.full_vote)
    full_gap = full["mean_error_0"] - full["mean_error_1"]
    assert metrics["full_vote"]["error_gap_auc"] == pytest.approx(roc_auc_score(labels, full_gap))
    assert metrics["full_vote"]["report_auc_minus_full_vote"] == pytest.approx(
        metrics["auc"] - metrics["full_vote"]["error_gap_auc"])
    retention = pd.read_csv(outputs.retention)
    assert {"accuracy", "balanced_accuracy"} <= set(retention.columns)
    assert retention["accuracy"].iloc[0] == pytest.approx(13 / 15)
    assert {"vote_share_auc", "error_gap_auc"} <= set(pd.read_csv(outputs.accuracy_vs_trials).columns)


def test_auc_tuning_on_a_one_class_validation_falls_back_to_the_accuracy_tuning() -> None:
    """Tiny projects may hold no malignant validation latent: there is no AUC to tune for, so the accuracy tuning
    runs instead (as before issue 15), and the report says so."""
    from pipelines.diffusion_classifier_report.tuning import tune_vote

    means = torch.stack([torch.full(SHAPE, -0.5), torch.full(SHAPE, 0.5)])
    lesions = lesion_table({"val": 6})
    lesions["label"] = 0
    validation = oracle_split(lesions, "val", means, set())
    params = DiffusionClassifierReportParams(classifier=DiffusionClassifierParams(n_trials=8, chunk_size=8),
                                             min_trials=1)
    tuning = tune_vote(GatedOracle(means, gate=600), validation.latents, validation.labels, validation.conditions,
                       validation.image_ids, params, SCHEDULE, torch.device("cpu"))
    assert tuning.target == "accuracy" and tuning.score == "vote_share"
    assert "no AUC to tune for" in tuning.summary()["fallback"]
    # every trial below the gate votes benign rightly, every trial above ties to benign: all bins are right
    assert tuning.classifier.t_range == (0.0, 1.0) and tuning.classifier.n_trials == 1
