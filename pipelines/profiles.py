"""Profiles: named sets of `params.yaml` values. `demo` (the default) is params.yaml as committed; `real` is the
papers' configuration (METHOD.md; Class-N-Diff §IV-A) on one GPU and the full ISIC download.

A profile is applied to params.yaml itself, not resolved behind it: `fairskin config --profile real --write`
sets each key below in the file (comments and layout kept), as `dvc exp run -S key=value` does, and prints what
changed. Why: DVC records the values each stage's params sections hold in params.yaml (dvc.lock), Dagster and
the CLI load the same file, and a run record keeps a copy of it. A `profile: real` key resolved at load time
would change what every stage computes while `dvc status` still called it up to date, and a restored run record
would not say which values it ran with. `load_params(path, profile=...)` and `fairskin config --profile real`
(or `fairskin <stage> --dry-run --profile real`) show the resolved configuration without writing anything.

Each key of REAL stands on its own line of params.yaml with a `# real profile: <value>` comment
(tests/test_profiles.py keeps the two in step). Where the data live (lesions.sources, external_sets.sets,
skin_tone.truth, local pretrained weights) is the user's: `still_to_set` names what still points at the demo.
"""

from __future__ import annotations

import copy
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipelines.atomic_files import atomic_path

REAL: dict[str, Any] = {
    # --- latents (METHOD.md §1)
    "vae.pretrained": "stabilityai/sd-vae-ft-ema",  # the authors' code; sd-vae-ft-mse is the option
    "vae.resolution": 256,  # paper §IV-A: 256x256 images -> 4x32x32 latents
    "latent_shards.batch_size": 128,  # images per encoder call on a GPU
    "latent_shards.checks.psnr_min": 24.0,  # sd-vae-ft-ema reconstructs 256-px ISIC images at ~27-30 dB
    # --- Class-N-Diff (METHOD.md §2-3; paper §III, §IV-A)
    "class_n_diff.train.model": "DiT-L/4",  # 24 blocks, hidden 1024, 16 heads, patch 4
    "class_n_diff.train.steps": 200_000,  # paper §IV-A
    "class_n_diff.train.batch_size": 8,  # paper §IV-A (the global batch; see docs/cluster.md for several GPUs)
    "class_n_diff.train.lr": 1e-4,  # paper §IV-A
    "class_n_diff.train.classifier_backbone": "resnet101",  # paper §III-A
    "class_n_diff.train.ema_decay": 0.9999,  # DiT
    "class_n_diff.train.ema_warmup": False,  # 200k steps need no warm-up of the average
    "class_n_diff.train.validate_every": 10_000,
    "class_n_diff.train.sample_every": 20_000,
    "class_n_diff.train.cpu_threads": None,  # torch's default
    "class_n_diff.side_by_side": False,  # one GPU: Class-N-Diff and the DiT baseline in turn
    # --- synthetic data (METHOD.md §4)
    "synthetic_shards.sampling.sampler": "ddpm",  # paper §III-C, as DiT: 250 DDPM steps
    "synthetic_shards.sampling.steps": 250,
    "synthetic_shards.sampling.guidance": {},  # the paper samples without classifier-free guidance
    "synthetic_shards.samples_per_shard": 1000,
    "generation_report.ms_ssim_pairs": 1000,
    # --- downstream classifiers (METHOD.md §5; training/downstream/params.py)
    "downstream_classifiers.backbone": "resnet50",  # or efficientnet_b0, at the same 224 px
    "downstream_classifiers.image_size": 224,  # the backbones' ImageNet size
    "downstream_classifiers.batch_size": 64,
    "downstream_classifiers.lr": 1e-4,  # with local ImageNet weights (pretrained_file)
    "downstream_classifiers.max_steps": 18_100,  # 20 epochs of the 57,882 ISIC training images at batch 64
    "downstream_classifiers.eval_every": 905,  # one epoch
    "downstream_classifiers.patience": 5,
    "downstream_classifiers.blur_probability": 1.0,  # seeds/002 Appendix B.2 blurs every image
    "downstream_classifiers.parallel_runs": 1,  # one GPU
    "downstream_classifiers.num_workers": 8,
    "downstream_classifiers.cache_images": False,  # 58k decoded images do not fit in memory
    "downstream_classifiers.torch_threads": None,
    # --- fairness (METHOD.md §5)
    "fairness_report.bootstrap_samples": 2000,
    "fairness_report.min_group_size": 30,
    "fairness_report.check.max_sensitivity_gap": 0.1,
    "fairness_report.check.max_auc_gap": 0.1,
    # --- the diffusion classifier (METHOD.md §6; seeds/002)
    "diffusion_classifier_report.classifier.n_trials": 501,  # the paper's vote (its Table 1 caption)
    "diffusion_classifier_report.classifier.images_per_forward": 256,
    "diffusion_classifier_report.classifier.autocast_bf16": True,
    "diffusion_classifier_report.classifier.counterfactual_steps": 50,
    "diffusion_classifier_report.tuning_images": 1000,
    "diffusion_classifier_report.max_trials_for_figures": 501,
    "diffusion_classifier_report.gallery_per_class": 4,
    "diffusion_classifier_report.bootstrap_samples": 2000,
    "diffusion_classifier_report.min_group_size": 30,
}

PROFILES: dict[str, dict[str, Any]] = {"demo": {}, "real": REAL}

_MISSING = object()


@dataclass(frozen=True)
class Change:
    key: str  # dotted params.yaml path
    old: Any  # the file's value; `None` with `present=False` when the key is not in the file
    new: Any
    present: bool = True

    def __str__(self) -> str:
        return f"{self.key}: {self.old if self.present else '(default)'!r} -> {self.new!r}"


def profile_values(name: str) -> dict[str, Any]:
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; expected one of {sorted(PROFILES)}")
    return PROFILES[name]


def _get(raw: dict, key: str) -> Any:
    node: Any = raw
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return _MISSING
        node = node[part]
    return node


def _set(raw: dict, key: str, value: Any, new_map: type = dict) -> None:
    *parents, leaf = key.split(".")
    node = raw
    for part in parents:
        if node.get(part) is None:
            node[part] = new_map()
        if not isinstance(node[part], dict):
            raise ValueError(f"params: {key}: {part!r} holds {node[part]!r}, expected a mapping")
        node = node[part]
    node[leaf] = copy.deepcopy(value)


def apply_profile(raw: dict, name: str) -> dict:
    """A copy of the raw params mapping with the profile's values set (the demo profile: unchanged)."""
    applied = copy.deepcopy(raw)
    for key, value in profile_values(name).items():
        _set(applied, key, value)
    return applied


def profile_changes(raw: dict, name: str) -> list[Change]:
    """The keys whose value the profile changes, in the profile's order."""
    changes = []
    for key, value in profile_values(name).items():
        old = _get(raw, key)
        if old is _MISSING:
            changes.append(Change(key, None, value, present=False))
        elif old != value or isinstance(old, bool) != isinstance(value, bool):  # 1 == True in Python
            changes.append(Change(key, old, value))
    return changes


def _round_trip_yaml():  # noqa: ANN202  (ruamel.yaml.YAML)
    from ruamel.yaml import YAML

    yaml = YAML()  # round-trip: comments, key order and flow style survive
    yaml.preserve_quotes = True
    yaml.width = 4096
    yaml.indent(mapping=2, sequence=4, offset=2)  # params.yaml's list style
    yaml.representer.add_representer(type(None), lambda r, _: r.represent_scalar("tag:yaml.org,2002:null", "null"))
    return yaml


def write_profile(path: Path | str, name: str) -> list[Change]:
    """Set the profile's values in the params file (comments and layout kept); returns what changed."""
    from ruamel.yaml.comments import CommentedMap

    path = Path(path)
    yaml = _round_trip_yaml()
    document = yaml.load(path.read_text())
    changes = profile_changes(_plain(document), name)
    if not changes:
        return []
    for change in changes:
        _set(document, change.key, change.new, new_map=CommentedMap)
    stream = io.StringIO()
    yaml.dump(document, stream)
    with atomic_path(path) as temp:
        temp.write_text(stream.getvalue())
    return changes


def _plain(document: Any) -> Any:
    if isinstance(document, dict):
        return {k: _plain(v) for k, v in document.items()}
    if isinstance(document, list):
        return [_plain(v) for v in document]
    return document


def still_to_set(params: Any, name: str) -> list[str]:  # noqa: ANN401  (pipelines.config.Params)
    """What a profile cannot choose for the user: data locations and local weights that still point at the demo."""
    if name != "real":
        return []
    demo = params.demo_data_out.rstrip("/") + "/"
    notes = []
    demo_sources = [s.path for s in params.lesions.sources if s.path.startswith(demo)]
    if demo_sources:
        notes.append(f"lesions.sources read the demo images ({', '.join(demo_sources)}): list your ISIC downloads "
                     f"(README 'Using the real ISIC data') and replace the data/raw/demo deps in dvc.yaml")
    if params.skin_tone.truth and params.skin_tone.truth.startswith(demo):
        notes.append(f"skin_tone.truth is the demo's answer key ({params.skin_tone.truth}): null on real data")
    demo_sets = [s.name for s in params.external_sets.sets if s.path.startswith(demo)]
    if demo_sets:
        notes.append(f"external_sets.sets {demo_sets} read demo images: point them at the real sets")
    if not params.class_n_diff.train.classifier_pretrained_file:
        notes.append("class_n_diff.train.classifier_pretrained_file is null: the ResNet-101 trains from scratch "
                     "(a local timm/torchvision checkpoint loads its ImageNet weights)")
    if not params.downstream_classifiers.pretrained_file:
        notes.append("downstream_classifiers.pretrained_file is null: the downstream classifiers train from "
                     "scratch, at the lr chosen for ImageNet weights (1e-4)")
    notes.append("generation_report.quality limits were set on the demo's 64-px codec: re-measure a good and a bad "
                 "generator at 256 px and set them between (README 'The real profile')")
    return notes
