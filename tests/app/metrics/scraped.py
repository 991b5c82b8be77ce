"""Reading a scrape the way Prometheus does: the text parsed by prometheus_client's own parser."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families


def samples(text: str) -> dict[tuple[str, tuple], float]:
    """{(sample name, sorted labels): value} of an exposition; it must parse."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def families(text: str) -> set[str]:
    """The family names of an exposition (counters without their _total)."""
    return {family.name for family in text_string_to_metric_families(text)}


def value(text: str, name: str, **labels) -> float:
    """One sample's value; 0 when absent (a counter not moved yet)."""
    return samples(text).get((name, tuple(sorted(labels.items()))), 0.0)
