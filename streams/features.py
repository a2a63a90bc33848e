"""Features of one partition: declarations become windowed series aggregates.

The first of the pipeline's three jobs (features -> scoring -> alert policy): which
series a declaration counts towards (:mod:`streams.series`), the event-time window
aggregation feeding them (:mod:`detectors.windows`), the contributions of lanes,
exporters and consignees to each rollup (:mod:`streams.influence`), and the
pass-through flows (into a transit hub, and out of it to Russia/Belarus) derived
from a closed window's lanes. No detector and no alert rule lives here.
"""

from __future__ import annotations

from detectors.reference import SANCTIONED_DESTINATIONS, TRANSIT_COUNTRIES
from detectors.windows import ClosedWindow, TumblingWindows
from streams.config import Settings
from streams.config_windows import window_plan
from streams.events import TradeDeclaration
from streams.influence import InfluenceTracker
from streams.series import ANY_ORIGIN, DeclarationKeys, SeriesCatalog

__all__ = ["Features", "passthrough_flows"]


class Features:
    """Windows and influence contributions of one partition's series.

    ``catalog`` comes from the settings (not state); ``windows`` and ``influence``
    are learned state, checkpointed with the pipeline.
    """

    def __init__(self, settings: Settings, catalog: SeriesCatalog | None = None) -> None:
        self.catalog = catalog or SeriesCatalog.from_settings(settings)
        w, plan = settings.windows, window_plan(settings)
        self.windows = TumblingWindows(
            grid=plan.grid, grace=w.grace_seconds, max_empty_windows=plan.max_empty_windows,
            top_k=w.top_k, max_lead=w.max_watermark_lead_seconds,
            confirmations=w.watermark_confirmations,
        )
        self.influence = InfluenceTracker()

    def add(self, d: TradeDeclaration, ts: float, keys: DeclarationKeys | None = None) -> bool:
        """Count ``d`` (event time ``ts``) in its window of every series; False if it is late.

        ``keys``: the catalog's :meth:`~streams.series.SeriesCatalog.declaration_keys`
        of ``d`` when the caller has them already.
        """
        if keys is None:
            keys = self.catalog.declaration_keys(d)
        windows = self.windows
        if not windows.add(ts, keys.keys, d.statistical_value_eur, d.net_mass_kg,
                           d.declaration_id):
            return False
        if keys.rollups:
            self.influence.add(windows.window_start(ts), keys.rollups, keys.lane, d.exporter_id,
                               d.consignee_id, d.statistical_value_eur)
        return True


def passthrough_flows(window: ClosedWindow) -> dict[str, list[float]]:
    """``passthrough:HUB>RU:hs6`` -> [inflow into the hub, outflow from it to RU/BY], from the lanes.

    Only lane series (one origin) are read: an all-origins series repeats their sums.
    """
    flows: dict[str, list[float]] = {}
    for key, agg in window.aggregates.items():
        if not key.startswith("hs6:"):
            continue
        _, route, hs6 = key.split(":")
        origin, destination = route.split(">")
        if origin == ANY_ORIGIN:
            continue
        if destination in TRANSIT_COUNTRIES:
            flows.setdefault(f"passthrough:{destination}>RU:{hs6}", [0.0, 0.0])[0] += agg.value_eur
        if origin in TRANSIT_COUNTRIES and destination in SANCTIONED_DESTINATIONS:
            flows.setdefault(f"passthrough:{origin}>RU:{hs6}", [0.0, 0.0])[1] += agg.value_eur
    return flows
