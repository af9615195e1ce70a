"""The text encoder keeps redis_exporter's names exactly and escapes what it must."""

from __future__ import annotations

from prometheus_client import ProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from memorywatch.exporter.exposition import Families, format_value, render


def test_names_types_and_escaping_round_trip() -> None:
    families = Families()
    families.counter("redis_total_error_replies", "no _total suffix added", 3)
    families.counter("redis_commands_total", "calls", 7, {"cmd": "client|list"})
    families.gauge(
        "redis_instance_info", "help with \\ and\nnewline", 1, {"os": 'a "quoted"\nvalue\\'}
    )
    text = render([_Source(families)]).decode()
    assert "# TYPE redis_total_error_replies counter\nredis_total_error_replies 3\n" in text
    assert "# TYPE redis_commands_total counter\n" in text
    parsed = {f.name: f for f in text_string_to_metric_families(text)}
    assert parsed["redis_instance_info"].samples[0].labels["os"] == 'a "quoted"\nvalue\\'
    assert parsed["redis_commands"].samples[0].labels == {"cmd": "client|list"}


def test_node_label_view_shares_families() -> None:
    families = Families()
    families.declare("redis_up", "up", "gauge")
    for node in ("a:1", "b:2"):
        families.with_labels({"node": node}).gauge("redis_up", "", 1)
    families.with_labels({"node": "c:3"}).gauge("redis_up", "", 0, {"role": "x"})
    (family,) = text_string_to_metric_families(render([_Source(families)]).decode())
    assert [s.labels for s in family.samples] == [
        {"node": "a:1"},
        {"node": "b:2"},
        {"role": "x", "node": "c:3"},
    ]


class _Source:
    def __init__(self, families: Families) -> None:
        self._families = families

    def families(self) -> Families:
        return self._families


def test_numbers_are_go_style() -> None:
    assert [format_value(v) for v in (1, 1.0, 0.25, 1e20, float("inf"), float("-inf"))] == [
        "1",
        "1",
        "0.25",
        "1e+20",
        "+Inf",
        "-Inf",
    ]
    assert format_value(float("nan")) == "NaN"


def test_prometheus_client_counters_get_total_on_their_type_line() -> None:
    text = render([ProcessCollector(registry=None)]).decode()
    assert "# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total " in text
