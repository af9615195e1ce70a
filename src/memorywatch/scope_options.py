"""The click options that set a `Scope`, shared by `alerts generate` and `dashboards generate`."""

from __future__ import annotations

from typing import Final

import click

from memorywatch.scope import Scope, ScopeError, parse_selector

cluster_label: Final = click.option(
    "--cluster-label",
    default=None,
    metavar="NAME",
    help="The label naming a cluster where one Prometheus (Thanos, Mimir, ...) holds several: "
    "every rule keeps it, every dashboard gets a $cluster variable. Default: off "
    "(one Prometheus per cluster).",
)
selector: Final = click.option(
    "--selector",
    default="",
    show_default=False,
    metavar='LABEL="VALUE",...',
    help="Matchers every metric selector gets, e.g. 'job=\"memorywatch\"' (equality only); "
    "aggregations keep these labels too. Default: none.",
)


def parse(label: str | None, text: str) -> Scope:
    """The scope the two options give, or a one-line usage error."""
    try:
        return Scope(cluster_label=label, selector=parse_selector(text))
    except ScopeError as exc:
        raise click.BadParameter(str(exc), param_hint="--cluster-label/--selector") from None
