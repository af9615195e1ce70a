"""Parse exporter output into families and samples, and scrape an in-process exporter."""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any
from wsgiref.util import setup_testing_defaults

from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from memorywatch.exporter.config import build_config
from memorywatch.exporter.http import ExporterApp


@dataclass
class Scrape:
    text: str

    def __post_init__(self) -> None:
        self.families = {f.name: f for f in text_string_to_metric_families(self.text)}
        self.all_samples = [s for f in self.families.values() for s in f.samples]

    def samples(self, name: str) -> list[Sample]:
        return [s for s in self.all_samples if s.name == name]

    def value(self, name: str, **labels: str) -> float:
        """The one sample named `name` whose labels include `labels`."""
        found = [
            s for s in self.samples(name) if all(s.labels.get(k) == v for k, v in labels.items())
        ]
        if len(found) != 1:
            raise AssertionError(f"{len(found)} samples of {name} with {labels}: {found}")
        return float(found[0].value)

    def type_of(self, sample_name: str) -> str:
        for family in self.families.values():
            if any(s.name == sample_name for s in family.samples):
                return str(family.type)
        raise AssertionError(f"no family holds {sample_name}")


def wsgi_get(app: ExporterApp, path: str, query: str = "") -> tuple[str, bytes]:
    environ: dict[str, Any] = {"PATH_INFO": path, "QUERY_STRING": query}
    setup_testing_defaults(environ)
    environ["wsgi.input"] = io.BytesIO()
    status: list[str] = []

    def start_response(s: str, _headers: list[tuple[str, str]]) -> None:
        status.append(s)

    body = b"".join(app(environ, start_response))
    return status[0], body


class InProcessExporter:
    """The exporter's WSGI app without a socket: real Redis, real collectors."""

    def __init__(self, **config: Any) -> None:
        self.app = ExporterApp(build_config(**config)).start()

    def scrape(self, path: str = "/metrics", query: str = "") -> Scrape:
        status, body = wsgi_get(self.app, path, query)
        assert status.startswith("200"), (status, body)
        return Scrape(body.decode())

    def close(self) -> None:
        self.app.close()

    def __enter__(self) -> InProcessExporter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
