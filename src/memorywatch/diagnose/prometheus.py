"""What Prometheus adds to a diagnosis: each alert's own expression evaluated now, and the
alert's firing history over the last hour. Only instant queries; only GET."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

HISTORY = "1h"
SERIES_SHOWN = 3
ID_LABELS = frozenset({"instance", "job", "alertname", "severity", "__name__"})


class PrometheusError(Exception):
    """Prometheus did not answer a query; the message is one line."""


@dataclass(frozen=True)
class Prometheus:
    url: str
    timeout: float = 5.0

    def query(self, promql: str) -> list[dict[str, Any]]:
        query = urllib.parse.urlencode({"query": promql})
        request = f"{self.url.rstrip('/')}/api/v1/query?{query}"
        if not request.startswith(("http://", "https://")):
            raise PrometheusError(f"{self.url}: not an http(s) URL")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as resp:  # noqa: S310
                body = json.loads(resp.read())
        except (OSError, ValueError) as exc:
            raise PrometheusError(f"{self.url}: {type(exc).__name__}: {exc}") from None
        if body.get("status") != "success":
            raise PrometheusError(f"{self.url}: {body.get('error', 'query failed')}")
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def expression_now(self, expr: str) -> list[str]:
        """The series ``expr`` yields now, as ``value {labels}`` lines (bounded labels only)."""
        lines = []
        for series in self.query(expr)[:SERIES_SHOWN]:
            labels = {k: v for k, v in series.get("metric", {}).items() if k not in ID_LABELS}
            shown = ", ".join(f"{k}={v}" for k, v in sorted(labels.items()))
            lines.append(f"{float(series['value'][1]):g}" + (f" {{{shown}}}" if shown else ""))
        return lines

    def firing_evaluations(self, alert: str) -> int:
        """Rule evaluations within the last hour at which the alert was firing (0: none)."""
        name = alert.replace('"', "")
        rows = self.query(
            f'max(count_over_time(ALERTS{{alertname="{name}",alertstate="firing"}}[{HISTORY}]))'
        )
        return int(float(rows[0]["value"][1])) if rows else 0
