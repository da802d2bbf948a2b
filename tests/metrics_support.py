"""Reading `/metrics` in tests: Prometheus's own parser, samples summed by labels."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "gauge": ("",),
}


class Scrape:
    def __init__(self, text: str) -> None:
        self.families: dict[str, Metric] = {
            family.name: family for family in text_string_to_metric_families(text)
        }

    def names(self) -> set[str]:
        """Every series name a query may use (a family with no samples yet included)."""
        names = set()
        for family in self.families.values():
            names.add(family.name)
            names.update(family.name + suffix for suffix in SUFFIXES.get(family.type, ("",)))
        return names

    def total(self, sample_name: str, **labels: str) -> float:
        """The sum of the samples named `sample_name` whose labels include `labels`."""
        return sum(
            sample.value
            for sample in self._samples(sample_name)
            if all(sample.labels.get(key) == value for key, value in labels.items())
        )

    def by(self, sample_name: str, *keys: str) -> dict[tuple[str, ...], float]:
        grouped: dict[tuple[str, ...], float] = defaultdict(float)
        for sample in self._samples(sample_name):
            grouped[tuple(sample.labels[key] for key in keys)] += sample.value
        return dict(grouped)

    def label_values(self, sample_name: str, key: str) -> set[str]:
        return {sample.labels[key] for sample in self._samples(sample_name)}

    def _samples(self, sample_name: str) -> Iterable[Sample]:
        for family in self.families.values():
            for sample in family.samples:
                if sample.name == sample_name:
                    yield sample
