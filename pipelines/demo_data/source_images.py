"""Patients, lesions and images of one source: who is shown (Fitzpatrick type, sex, age), which lesion,
which diagnosis, and the ids each source prints (ISIC_, HAM_, BCN_, IP_, IL_, DDI numbers)."""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from pipelines.demo_data.layouts import DemoImage
from pipelines.demo_data.params import DemoDataParams
from pipelines.demo_data.sources import (
    BENIGN,
    CODE,
    DDI_BENIGN,
    DDI_CODE,
    DDI_MELANOMA,
    DDI_OTHER_MALIGNANT,
    HAM_LOCALIZATION,
    MELANOMA,
    SITE_MISSING,
    SITES,
    SIZE_OF,
    SOURCES,
    WORDED,
)


def _quota(rng: np.random.Generator, weights: tuple[float, ...], n: int) -> np.ndarray:
    """Fitzpatrick types 1..6 for n patients in exact proportion (largest remainder), shuffled: a small demo
    keeps the intended skew instead of a lucky draw."""
    share = np.asarray(weights, dtype=float) / sum(weights) * n
    counts = np.floor(share).astype(int)
    for k in np.argsort(-(share - counts), kind="stable")[: n - counts.sum()]:
        counts[k] += 1
    return rng.permutation(np.repeat(np.arange(1, 7), counts))


class SourcePlanner:
    """Draws every source's images from one plan RNG stream, keeping ids distinct within each namespace."""

    def __init__(self, params: DemoDataParams):
        self.params = params
        self.rng = np.random.default_rng([params.seed, 0])  # plan stream; rendering uses per-image streams
        self.taken: dict[str, set[int]] = defaultdict(set)

    def numbers(self, namespace: str, n: int, low: int, high: int) -> list[int]:
        """n new distinct 7-digit numbers in [low, high) for ids like ISIC_/HAM_/IP_ (sorted)."""
        taken = self.taken[namespace]
        if high - low - sum(low <= t < high for t in taken) < n:
            raise ValueError(f"{namespace} ids in [{low}, {high}): cannot draw {n} more; lower n_images")
        new: set[int] = set()
        while len(new) < n:
            x = int(self.rng.integers(low, high))
            if x not in taken:
                new.add(x)
        taken |= new
        return sorted(new)

    def ids(self, prefix: str, n: int) -> list[str]:
        return [f"{prefix}_{x:07d}" for x in self.numbers(prefix, n, 0, 10_000_000)]

    def labels(self, source: str, n: int) -> list[str]:
        """One label per lesion: exactly round(rate x n) melanomas, the rest by the source's weights."""
        n_mel = max(1 if n >= 3 else 0, round(self.params.melanoma_rate * n))
        melanoma = set(self.rng.choice(n, size=n_mel, replace=False).tolist())
        names = list(BENIGN[source])
        weights = np.array([BENIGN[source][k] for k in names])
        benign = self.rng.choice(len(names), size=n, p=weights / weights.sum())
        mel_names = MELANOMA.get(source, ("MEL",))
        return [str(self.rng.choice(mel_names)) if i in melanoma else names[benign[i]] for i in range(n)]

    def skew_melanoma_away_from_dark_skin(self, source: str, labels: list[str], types: list[int]) -> None:
        """In place: each melanoma on Fitzpatrick V-VI stays with probability `dark_skin_melanoma_factor`, else it
        trades labels with a random benign lesion on types I-IV (the melanoma count, hence the rate, is kept).

        ISIC holds very few melanomas on dark skin (DATA.md §5); with this skew, a classifier trained on the demo
        learns "dark skin, rarely malignant" beside the faint cues (render.py), the planted gap of
        docs/experiment.md. A child generator of (seed, source) keeps every other draw of the plan unchanged."""
        factor = self.params.dark_skin_melanoma_factor
        if factor >= 1.0:
            return
        rng = np.random.default_rng((self.params.seed, 5, sum(map(ord, source))))
        melanoma = set(MELANOMA.get(source, ("MEL",)))
        light_benign = [i for i, (label, fst) in enumerate(zip(labels, types, strict=True))
                        if fst <= 4 and label not in melanoma]
        rng.shuffle(light_benign)
        for i, (label, fst) in enumerate(zip(list(labels), types, strict=True)):
            if fst >= 5 and label in melanoma and light_benign and rng.random() >= factor:
                j = light_benign.pop()
                labels[i], labels[j] = labels[j], labels[i]

    def images(self, source: str, n: int) -> list[DemoImage]:
        """n images of one source: patients (type, sex, age) -> lesions (site, label) -> images."""
        rng, params = self.rng, self.params
        ham = source in ("ham", "ham_test")
        low, high = params.images_per_patient_2020 if source == "isic2020" else params.images_per_patient
        sizes: list[int] = []
        while sum(sizes) < n:
            # HAM10000 has no patients, only lesions: 10,015 images of 7,470 lesions (DATA.md §1.3).
            k = 1 + int(rng.binomial(2, 0.2)) if ham else int(rng.integers(low, high + 1))
            sizes.append(min(k, n - sum(sizes)))
        weights = params.archive_fitzpatrick_weights if source == "archive" else params.fitzpatrick_weights
        types = _quota(rng, weights, len(sizes))
        sexes = rng.choice(["male", "female", ""], size=len(sizes), p=[0.52, 0.46, 0.02])
        ages = 5 * np.rint(np.clip(rng.normal(52, 15, len(sizes)), 10, 85) / 5).astype(int)
        patient_ids = self.ids("IP", len(sizes)) if source in ("isic2020", "archive") else [""] * len(sizes)
        n_lesions = len(sizes) if ham else n
        labels = self.labels(source, n_lesions)
        patient_of = [p for p, k in enumerate(sizes) for _ in range(k)] if not ham else list(range(len(sizes)))
        self.skew_melanoma_away_from_dark_skin(source, labels, [int(types[patient_of[i]]) for i in range(n_lesions)])
        if ham and not {"AK", "SCC"} & set(labels):  # plant the 2018 akiec -> 2019 AK/SCC split
            labels[next(i for i, label in enumerate(labels) if label != "MEL")] = "SCC"
        site_names = list(SITES)
        p_site = np.array(list(SITES.values()), dtype=float)
        sites = rng.choice(site_names, size=n_lesions, p=p_site / p_site.sum()).tolist()
        missing_site = rng.random(n_lesions) < SITE_MISSING.get(source, 0.10)
        prefix = {"ham": "HAM", "ham_test": "HAM", "bcn": "BCN", "archive": "IL"}.get(source)
        lesion_ids = self.ids(prefix, n_lesions) if prefix else [""] * n_lesions
        numbers = self.numbers("ISIC", n, *SOURCES[source][2])
        out, i = [], 0
        for p, k in enumerate(sizes):
            for _ in range(k):
                lesion = p if ham else i
                site = "" if missing_site[lesion] else sites[lesion]
                label = labels[lesion]
                out.append(
                    DemoImage(
                        isic_id=f"ISIC_{numbers[i]:07d}",
                        source=source,
                        fitzpatrick=int(types[p]),
                        diagnosis=CODE.get(label, label),
                        detail=label if source in WORDED else "",
                        sex=str(sexes[p]),
                        age=None if rng.random() < 0.03 else int(ages[p]),
                        site=site,
                        patient_id=patient_ids[p],
                        lesion_id=lesion_ids[lesion],
                        dx_type=self.dx_type(label) if ham else "",
                        localization=str(rng.choice(HAM_LOCALIZATION[site])) if ham else "",
                        size=tuple(params.image_sizes[SIZE_OF[source]]),
                        render_key=numbers[i],
                    )
                )
                i += 1
        return out

    def dx_type(self, code: str) -> str:
        # HAM10000: every melanoma is histopathology-confirmed; nevi mostly follow-up (DATA.md §1.3 counts).
        if code == "MEL":
            return "histo"
        if code == "NV":
            return str(
                self.rng.choice(["follow_up", "histo", "consensus", "confocal"], p=[0.55, 0.35, 0.08, 0.02])
            )
        return str(self.rng.choice(["histo", "consensus"], p=[0.75, 0.25]))

    def ddi(self) -> list[DemoImage]:
        """Balanced skin tones 12/34/56 (DATA.md §3.1), the same malignant count in each."""
        rng, params = self.rng, self.params
        per_tone = max(2, params.n_ddi // 3)
        n_malignant = round(params.ddi_malignant_rate * per_tone)
        n_melanoma = round(params.ddi_melanoma_share * n_malignant + 1e-9)
        planned = []
        for types in ((1, 2), (3, 4), (5, 6)):
            for j in range(per_tone):
                pool = (
                    DDI_MELANOMA if j < n_melanoma else DDI_OTHER_MALIGNANT if j < n_malignant else DDI_BENIGN
                )
                planned.append((int(rng.choice(types)), str(rng.choice(pool))))
        size = tuple(params.image_sizes["ddi"])
        return [
            DemoImage(
                isic_id="",
                source="ddi",
                fitzpatrick=fst,
                diagnosis=DDI_CODE.get(disease, "OTHER"),
                detail=disease,
                size=size,
                render_key=ddi_id,
                ddi_id=ddi_id,
            )
            for ddi_id, (fst, disease) in enumerate((planned[i] for i in rng.permutation(len(planned))), 1)
        ]
