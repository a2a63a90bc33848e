"""The analyst-facing configuration: one TOML file, validated in full at start.

Every section is a frozen, typed struct that rejects unknown keys, so a typo fails
at start-up with the path of the bad key instead of silently using a default.
Detector parameters are checked by building each detector, so a bad parameter
names the detector and the parameter. A few deployment settings can be
overridden from the environment (see :data:`ENV_OVERRIDES`), so one file serves a
laptop and a cluster.

>>> settings = load_settings_text('''
... [windows]
... size_seconds = 3600
... ''')
>>> settings.windows.size_seconds, settings.kafka.bootstrap_servers
(3600.0, '127.0.0.1:9092')
>>> try:
...     load_settings_text('[windows]\\nsize_secnds = 3600')
... except ConfigError as err:
...     print(err)
config error at windows.size_secnds: unknown key (valid keys: calendar, grace_seconds, holidays, idle_series, idle_timeout_seconds, levels, max_gap, max_watermark_lead_seconds, size, size_seconds, timezone, top_k, watermark_confirmations)
>>> try:
...     load_settings_text('[windows]\\ncalendar = "month"\\n[alerts]\\ncooldown = "1d"')
... except ConfigError as err:
...     print(err)
config error at alerts.cooldown: 1d is shorter than one window (month); use 0 (off) or a longer duration
"""

from __future__ import annotations

import fnmatch
import os
import re
import tomllib
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec

from detectors.calendar import WindowGrid
from detectors.calibration import Severity
from streams.config_windows import check_windows, pop_renamed_keys, resolve_window_params

__all__ = [
    "ConfigError",
    "Settings",
    "DetectorSpec",
    "load_settings",
    "load_settings_text",
    "DEFAULT_CONFIG_PATH",
    "ENV_OVERRIDES",
    "KafkaSettings",
    "SeriesSpec",
    "default_series",
]

DEFAULT_CONFIG_PATH = Path(__file__).resolve().parent.parent / "deploy" / "tradewatch.toml"

Positive = Annotated[float, msgspec.Meta(gt=0)]
NonNegative = Annotated[float, msgspec.Meta(ge=0)]
Score = Annotated[float, msgspec.Meta(ge=0, le=1)]
Level = Literal["hs6", "hs4", "hs2", "tier"]
Direction = Literal["up", "down", "both"]


class ConfigError(ValueError):
    """Bad configuration; ``path`` is the dotted path of the offending key."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"config error at {path or '<root>'}: {message}")
        self.path = path


class _Section(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    pass


SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]


class KafkaSettings(_Section):
    """Where the cluster is and how to log in to it.

    Secrets are never values here: a password is named by the environment variable
    or the file that holds it (``*_env`` / ``*_file``), so the effective
    configuration can be printed, logged and checked in without leaking it.
    """

    #: Overridden by TRADEWATCH_BOOTSTRAP_SERVERS; when set, no local broker is started.
    bootstrap_servers: str = "127.0.0.1:9092"
    client_id: str = "tradewatch"
    consumer_group: str = "tradewatch-worker"
    #: PLAINTEXT, SSL (TLS), SASL_PLAINTEXT (a login, unencrypted) or SASL_SSL (a login over TLS).
    security_protocol: SecurityProtocol = "PLAINTEXT"
    sasl_mechanism: SaslMechanism | None = None
    sasl_username: str | None = None
    #: The password comes from exactly one of: an environment variable named here ...
    sasl_password_env: str | None = None
    #: ... or a file (its first line; keep it 0600).
    sasl_password_file: str | None = None
    #: CA certificate(s) (PEM) that signed the brokers' certificates. Unset: the
    #: system's trusted CAs (what a managed cluster with a public CA needs).
    ssl_cafile: str | None = None
    #: Client certificate (PEM) and its key, for clusters that authenticate clients by TLS.
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    ssl_key_password_env: str | None = None
    ssl_key_password_file: str | None = None
    #: Check that the broker's certificate names the host connected to. Leave on.
    ssl_check_hostname: bool = True


class TopicSettings(_Section):
    declarations: str = "trade.declarations"
    dlq: str = "trade.declarations.dlq"
    alerts: str = "trade.alerts"
    #: Incidents: one window's alerts on one destination and goods family (streams.incidents).
    incidents: str = "trade.incidents"
    #: Published configs (``tradewatch config publish``), compacted, keyed by consumer
    #: group: every worker of the group follows it and retunes live (streams.retune).
    config: str = "trade.config"
    #: Analyst feedback on alerts (``tradewatch alerts mark``), compacted, keyed by alert
    #: id: every worker follows it (streams.feedback).
    feedback: str = "trade.feedback"
    #: Declarations are keyed by HS6, so a product's every route lands on one partition.
    partitions: Annotated[int, msgspec.Meta(ge=1, le=256)] = 4


class ValidationSettings(_Section):
    max_message_bytes: Annotated[int, msgspec.Meta(ge=256)] = 65_536
    #: Clock skew tolerated between customs systems and the worker.
    max_future_seconds: NonNegative = 86_400.0
    #: Largest plausible value per declaration; above it a record is dead-lettered as
    #: ``value_out_of_range``. The biggest single export declarations (an aircraft, a
    #: ship) are worth about 1e9 EUR; 1e10 leaves room, 1e308 is a producer bug that
    #: would otherwise dominate every total and raise critical alerts.
    max_statistical_value_eur: Positive = 1e10
    #: The largest bulk carriers load about 4e8 kg.
    max_net_mass_kg: Positive = 1e9
    #: Supplementary units are pieces, litres, pairs, m2...: generous on purpose.
    max_supplementary_quantity: Positive = 1e12
    #: Event-time seconds a partition remembers the declaration ids it accepted; a
    #: second record with a remembered id is dead-lettered as ``duplicate_declaration``.
    #: At least one window plus its grace: an older copy falls in a closed window and
    #: is dead-lettered as ``late_event`` anyway. 0 switches de-duplication off. Unset
    #: with windows longer than a day: raised to the longest window plus its grace.
    dedup_horizon_seconds: NonNegative = 172_800.0


Calendar = Literal["day", "week", "month"]
#: A duration: "30s", "15m", "12h", "7d", "2w", or a number of seconds.
Duration = str | float


class WindowSettings(_Section):
    """Where windows start and end, and how long the partition's memory of them lasts.

    Give at most one of ``size_seconds``, ``size`` and ``calendar``; none means
    daily windows (UTC). See :mod:`detectors.calendar` and :mod:`streams.config_windows`.
    """

    #: Fixed windows of this many seconds, aligned to the epoch (UTC). Unset with
    #: ``size`` and ``calendar`` unset too: daily windows, because customs systems
    #: lodge declarations around the clock, and daily totals are where a tenfold jump
    #: in one product on one route becomes visible.
    size_seconds: Positive | None = None
    #: The same as a duration: "1d", "7d", "30d" (a 7d window starts on a Thursday,
    #: the epoch's weekday; a 30d window drifts through the months: prefer calendar).
    size: str | None = None
    #: Calendar windows: "day" (local midnight), "week" (ISO week, Monday 00:00) or
    #: "month" (the 1st, 00:00), in ``timezone``.
    calendar: Calendar | None = None
    #: IANA time zone of calendar windows ("Europe/Berlin": a local day is 23 or 25 h
    #: long when the clocks change). Fixed windows are always UTC.
    timezone: str = "UTC"
    #: Days whose windows are learned apart by the gap model (an empty holiday is not an
    #: outage once holidays are known to be quiet): "MM-DD" every year, "YYYY-MM-DD" once.
    holidays: tuple[str, ...] = ()
    #: Late declarations are accepted this long after a window ends; less than one window.
    grace_seconds: NonNegative = 3_600.0
    #: Quiet period before a partition's open windows are closed by the wall clock (the
    #: end of a replay, a feed that pauses): wall-clock seconds the partition must have
    #: been caught up (consumer lag 0) and without a record. A partition still behind is
    #: never idle-closed, however long it waits for its turn; nor is state restored at
    #: start before it has been caught up this long in the new process. Longer than a
    #: fetch round trip and a producer's linger; short enough that the last day of a
    #: replay is judged within a minute.
    idle_timeout_seconds: Positive = 30.0
    #: A record more than this far (event time) ahead of its partition's watermark is
    #: held: counted in its window but not allowed to move the watermark by itself, so a
    #: record dated "now" in a 2022 stream cannot close every window up to now. One
    #: window: the natural night-time jump of a busy partition is hours, an upstream
    #: outage is days (and confirmed, below). A record ahead by less than this can still
    #: close the windows it passes, so keep it near one window.
    max_watermark_lead_seconds: Positive = 86_400.0
    #: Held records it takes before the watermark jumps ahead (to the N-th largest of
    #: them): the backlog after an outage is followed within a few records, while up to
    #: N-1 outliers never move it.
    watermark_confirmations: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 5
    #: Shorthand for lanes only (one origin -> one destination) at these product
    #: levels: ``["hs6", "tier"]`` is ``[[series]]`` ``hs6`` and ``tier`` with origin
    #: "each". Give either this or ``[[series]]``; unset: the default families
    #: (:func:`default_series`), lanes and the transit-country view.
    levels: tuple[Level, ...] | None = None
    #: A series without a declaration for this long is forgotten (its state freed).
    #: Unset: 120d, at least one window. Replaces ``idle_series_windows``.
    idle_series: Duration | None = None
    #: A silence longer than this emits no more empty windows (they cost time and tell
    #: nothing more). Unset: 366d, at least one window. Replaces ``max_empty_windows``.
    max_gap: Duration | None = None
    top_k: Annotated[int, msgspec.Meta(ge=1, le=100)] = 5

    def grid(self) -> WindowGrid:
        """The window grid these settings describe (assumes :func:`load_settings` checked them)."""
        from streams.config_windows import _grid_of

        return _grid_of(self)


class WorkerSettings(_Section):
    #: faust's web server (which serves /metrics) binds 0.0.0.0 by default; we do not.
    web_host: str = "127.0.0.1"
    web_port: Annotated[int, msgspec.Meta(ge=1, le=65535)] = 6066
    #: Detector checkpoints and faust's table data.
    data_dir: str = "var/worker"
    #: Static group membership (Kafka ``group.instance.id``): a worker restarted with
    #: the same id takes its partitions back at once instead of waiting out its dead
    #: predecessor's session. One id per worker process; empty = dynamic membership.
    #: Overridden by TRADEWATCH_INSTANCE_ID.
    instance_id: str = ""
    #: A worker that stops heartbeating (killed, hung) loses its partitions after this
    #: long; a clean shutdown leaves the group at once.
    session_timeout_seconds: Annotated[float, msgspec.Meta(ge=6, le=300)] = 10.0
    #: Save each partition's detector state whenever it closes a window, and resume
    #: from it after a restart or rebalance.
    checkpoints: bool = True
    #: A partition's state is saved at most this often (and only after it closed a
    #: window): a save serialises its whole state. A restart replays the records
    #: since the last save, so a longer interval costs replay time, never alerts.
    #: The worker stretches it to ten times what its last saves took (a large
    #: state); 0 saves after every batch.
    state_save_interval_seconds: NonNegative = 5.0


class AlertSettings(_Section):
    #: After an alert on a series, the same detector stays quiet on it for the windows
    #: that end within this long after the alert's window ("7d": a week of daily
    #: windows; rounded to whole windows, so "31d" is one month). "0s": no cooldown.
    #: Unset: 7d, at least one window. Replaces ``cooldown_windows``.
    cooldown: Duration | None = None
    #: Alerts below this severity are counted but not published.
    min_severity: Severity = "low"
    #: "chpl": publish alerts on Common High Priority List goods only (the mission);
    #: "all": every product. Out-of-scope scores are still counted as suppressed.
    scope: Literal["chpl", "all"] = "chpl"
    #: Evidence (:mod:`streams.evidence`): a series surge is published on its window
    #: alone when at least this many declarations carry its excess. One or two
    #: shipments are how sparse routes look, not a pattern. 0: no evidence rule.
    min_declarations: Annotated[int, msgspec.Meta(ge=0)] = 3
    #: Count only the declarations that carry a window's excess (the fewest of its
    #: largest whose removal brings it back into range): three declarations of which
    #: one big order holds the whole excess are one shipment's doing. false: count all.
    weigh_declarations: bool = True
    #: Persistence: the same series' windows over threshold (any detector, surge side)
    #: within this long before a window add their carrying declarations to its own; a
    #: run of windows is published once the sum reaches ``persistence_min_declarations``.
    #: A lane shipping once a day that surges four days running has four. "0s": each
    #: window alone. Unset: 3d, at least one window.
    persistence: Duration | None = None
    #: The declarations a run of over-threshold windows must add up to. One more than
    #: a single window needs by default: a sparse lane's ordinary bursts come in pairs
    #: of windows far more often than its surges do.
    persistence_min_declarations: Annotated[int, msgspec.Meta(ge=1)] = 4
    #: Heavy sparse evidence: a surge backed by fewer declarations is still published
    #: when its excess above the expected range reaches this multiple of its goods'
    #: materiality floor (``min_excess_eur_chpl`` / ``min_excess_eur_other``), the floor
    #: of CHPL tiers 1 and 2 halved. 0: off (only declarations and persistence count).
    heavy_excess_factor: NonNegative = 0.0
    #: Materiality: a series surge in EUR is published only when its value above the
    #: expected range (``excess_eur``) reaches this much, for goods on the Common High
    #: Priority List (the mission: small sums matter) ...
    min_excess_eur_chpl: NonNegative = 0.0
    #: ... and for goods outside it (only in scope with ``scope = "all"``; real lanes of
    #: ordinary goods swing tenfold from month to month, so only large sums are news).
    #: Per-declaration, pass-through and collapse findings are not held to either. 0: off.
    min_excess_eur_other: NonNegative = 0.0
    #: After an outage (a window in which a whole partition had no declaration although
    #: such windows usually have some; an ordinary quiet weekend is not one), alerts of
    #: the windows within this long are capped at "low": the backlog arriving late looks
    #: like a spike on every route at once. "0s": no cap. Unset: 2d, at least one
    #: window. Replaces ``catchup_windows``.
    catchup: Duration | None = None


class DetectorSpec(_Section):
    """One detector: which kind, its alert threshold on the common [0, 1] scale, its parameters."""

    kind: str
    threshold: Score = 0.9
    enabled: bool = True
    #: Series detectors only: judge a series only once at least this share of its recent
    #: windows (about the last 20) had declarations; sparser series are learned, not
    #: scored. A route that ships once a fortnight has no daily level to spike from.
    min_series_activity: Annotated[float, msgspec.Meta(ge=0, le=1)] = 0.0
    params: dict[str, Any] = {}


class SeriesSpec(_Section):
    """One family of series the detectors watch: the dimensions that split trade, the grain that sums it.

    Keys read ``level:origin>destination:product`` with the product grain as level
    and ``*`` as the origin of an all-origins series (see :mod:`streams.series`).
    """

    #: Names the family in metrics (the ``level`` label) and errors.
    name: Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9_]{0,31}$")]
    #: "each": one series per exporting country (a lane); "any": all origins summed
    #: (the transit-country view, key origin ``*``); or one country code.
    origin: Annotated[str, msgspec.Meta(pattern=r"^(each|any|[A-Z]{2})$")] = "each"
    #: "each": one series per destination country; or one country code.
    destination: Annotated[str, msgspec.Meta(pattern=r"^(each|[A-Z]{2})$")] = "each"
    #: hs6 (the product), hs4 (heading) or hs2 (chapter) of goods outside the CHPL,
    #: or tier (CHPL goods by tier). CHPL goods count towards hs6 and tier only.
    product: Level = "hs6"
    #: Which deviations alert: "up" (surges, the default), "down" (collapses: exports
    #: to Russia that stop are news too) or "both".
    direction: Direction = "up"


def default_series() -> list[SeriesSpec]:
    """Lanes per HS6 and per tier (as before), and the transit-country view of both.

    The transit view sums every origin into one destination: the figure sanctions
    analysts read ("EU exports of CHPL goods to Kyrgyzstan"), where a re-routing surge
    spread thin over many sparse member-state lanes adds up.
    """
    return [
        SeriesSpec(name="hs6", origin="each", product="hs6"),
        SeriesSpec(name="tier", origin="each", product="tier"),
        SeriesSpec(name="transit_hs6", origin="any", product="hs6"),
        SeriesSpec(name="transit_tier", origin="any", product="tier"),
    ]


class SeriesOverride(_Section):
    """A different threshold for series whose key matches a glob, e.g. ``hs6:DE>KG:8542*``."""

    match: str
    detector: str
    threshold: Score | None = None
    enabled: bool | None = None


def _default_detectors() -> dict[str, DetectorSpec]:
    return {
        "volume": DetectorSpec(kind="volume", threshold=0.99),
        "spike": DetectorSpec(kind="spike", threshold=0.99, min_series_activity=0.9),
        "trend": DetectorSpec(kind="trend", threshold=0.95),  # daily windows: 28 / 365 / 120
        "changepoint": DetectorSpec(kind="changepoint", threshold=0.9),
        "passthrough": DetectorSpec(kind="passthrough", threshold=0.8),
        "onset": DetectorSpec(kind="onset", threshold=0.88),  # daily windows: 28 / 180
        "unit_value": DetectorSpec(kind="unit_value", threshold=0.99),
        "novelty": DetectorSpec(kind="novelty", threshold=0.95),
    }


class Settings(_Section):
    """Everything a worker, the producer tooling and the offline evaluator read."""

    #: Free text echoed in the ``tradewatch_build_info`` metric, so a dashboard shows
    #: which config revision produced an alert.
    config_version: str = "default"
    kafka: KafkaSettings = KafkaSettings()
    topics: TopicSettings = TopicSettings()
    validation: ValidationSettings = ValidationSettings()
    windows: WindowSettings = WindowSettings()
    worker: WorkerSettings = WorkerSettings()
    alerts: AlertSettings = AlertSettings()
    detectors: dict[str, DetectorSpec] = msgspec.field(default_factory=_default_detectors)
    overrides: list[SeriesOverride] = []
    #: The series families (``[[series]]``); empty: ``windows.levels`` or the default.
    series: list[SeriesSpec] = []

    def series_definitions(self) -> list[SeriesSpec]:
        """The effective families: ``[[series]]``, else lanes at ``windows.levels``, else the default."""
        if self.series:
            return list(self.series)
        if self.windows.levels is not None:
            return [SeriesSpec(name=level, origin="each", product=level) for level in self.windows.levels]
        return default_series()

    def threshold_for(self, detector: str, series_key: str) -> float | None:
        """The threshold for one series, or ``None`` if the detector is off for it."""
        spec = self.detectors[detector]
        threshold, enabled = spec.threshold, spec.enabled
        for override in self.overrides:
            if override.detector == detector and fnmatch.fnmatchcase(series_key, override.match):
                threshold = override.threshold if override.threshold is not None else threshold
                enabled = override.enabled if override.enabled is not None else enabled
        return threshold if enabled else None

    def to_toml(self) -> str:
        """The effective configuration as TOML that :func:`load_settings_text` reads back."""
        data = self.to_dict()
        lines = [f"config_version = {_toml_value(data.pop('config_version'))}"]
        detectors, overrides = data.pop("detectors"), data.pop("overrides")
        series = data.pop("series")
        for section, values in data.items():
            lines += ["", f"[{section}]"] + [
                f"{k} = {_toml_value(v)}" for k, v in values.items() if v is not None]
        for name, spec in detectors.items():
            lines += ["", f"[detectors.{name}]"] + [f"{k} = {_toml_value(v)}" for k, v in spec.items()]
        for override in overrides:
            lines += ["", "[[overrides]]"] + [
                f"{k} = {_toml_value(v)}" for k, v in override.items() if v is not None]
        for family in series:
            lines += ["", "[[series]]"] + [f"{k} = {_toml_value(v)}" for k, v in family.items()]
        return "\n".join(lines) + "\n"

    def to_dict(self) -> dict[str, Any]:
        """The effective configuration as plain data (what ``config check`` prints)."""
        return typing.cast(dict[str, Any], msgspec.to_builtins(self))


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"cannot write {type(value).__name__} as TOML")


#: Environment variable -> dotted config path. Environment wins over the file.
ENV_OVERRIDES: Mapping[str, str] = {
    "TRADEWATCH_BOOTSTRAP_SERVERS": "kafka.bootstrap_servers",
    "TRADEWATCH_WEB_PORT": "worker.web_port",
    "TRADEWATCH_WEB_HOST": "worker.web_host",
    "TRADEWATCH_CONSUMER_GROUP": "kafka.consumer_group",
    "TRADEWATCH_INSTANCE_ID": "worker.instance_id",
    "TRADEWATCH_KAFKA_SECURITY_PROTOCOL": "kafka.security_protocol",
    "TRADEWATCH_KAFKA_SASL_MECHANISM": "kafka.sasl_mechanism",
    "TRADEWATCH_KAFKA_SASL_USERNAME": "kafka.sasl_username",
    # the secret itself: the setting becomes the variable's *name*, never its value
    "TRADEWATCH_KAFKA_SASL_PASSWORD": "kafka.sasl_password_env",
    "TRADEWATCH_KAFKA_SASL_PASSWORD_FILE": "kafka.sasl_password_file",
    "TRADEWATCH_KAFKA_SSL_CAFILE": "kafka.ssl_cafile",
    "TRADEWATCH_KAFKA_SSL_CERTFILE": "kafka.ssl_certfile",
    "TRADEWATCH_KAFKA_SSL_KEYFILE": "kafka.ssl_keyfile",
    "TRADEWATCH_KAFKA_SSL_CHECK_HOSTNAME": "kafka.ssl_check_hostname",
}
#: Overrides whose setting is the name of the variable (it holds a secret).
_BY_NAME = frozenset({"TRADEWATCH_KAFKA_SASL_PASSWORD"})
#: Keys of which one source at most may be set; an override of one drops the other.
_ONE_OF = {"sasl_password_env": "sasl_password_file", "sasl_password_file": "sasl_password_env",
           "ssl_key_password_env": "ssl_key_password_file",
           "ssl_key_password_file": "ssl_key_password_env"}


def load_settings(path: str | Path | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Load, validate and return the settings; raise ConfigError naming the bad key."""
    path = Path(path) if path is not None else DEFAULT_CONFIG_PATH
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError("", f"cannot read {path}: {err.strerror}") from None
    return load_settings_text(text, env=env, source=str(path))


def _check_evidence(a: AlertSettings) -> None:
    """A run of windows never needs less evidence than one window (streams/evidence.py)."""
    if a.min_declarations > 0 and a.persistence_min_declarations < a.min_declarations:
        raise ConfigError("alerts.persistence_min_declarations",
                          f"{a.persistence_min_declarations} is below alerts.min_declarations "
                          f"({a.min_declarations}): a run of windows would be published on less "
                          "evidence than one window; use at least min_declarations")


def load_settings_text(
    text: str, env: Mapping[str, str] | None = None, source: str = "<string>"
) -> Settings:
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError("", f"{source} is not valid TOML: {err}") from None
    from streams.config_kafka import check_kafka, refuse_inline_secrets

    refuse_inline_secrets(raw)
    _apply_env(raw, os.environ if env is None else env)
    detectors = raw.pop("detectors", None)
    renamed = pop_renamed_keys(raw)
    validation = raw.get("validation")
    dedup_given = isinstance(validation, dict) and "dedup_horizon_seconds" in validation
    settings = _convert(raw, Settings, "")
    check_kafka(settings.kafka)
    settings = check_windows(settings, renamed, dedup_given)
    _check_evidence(settings.alerts)
    if detectors is not None:
        if not isinstance(detectors, dict):
            raise ConfigError("detectors", "must be a table of [detectors.<name>] sections")
        specs = {
            name: _convert(spec, DetectorSpec, f"detectors.{name}")
            for name, spec in detectors.items()
        }
        settings = msgspec.structs.replace(settings, detectors=specs)
    settings = resolve_window_params(settings)
    _check_detectors(settings)
    settings = _resolve_series(settings)
    _check_series(settings)
    return settings


def _convert(raw: Any, tp: type[Any], prefix: str) -> Any:
    try:
        return msgspec.convert(raw, tp, strict=False)
    except msgspec.ValidationError as err:
        raise _explain(str(err), tp, prefix) from None


def _apply_env(raw: dict[str, Any], env: Mapping[str, str]) -> None:
    for var, dotted in ENV_OVERRIDES.items():
        if env.get(var):
            section, key = dotted.split(".")
            table = raw.setdefault(section, {})
            if not isinstance(table, dict):
                raise ConfigError(section, "must be a table")
            if key in _ONE_OF:
                table.pop(_ONE_OF[key], None)
            table[key] = var if var in _BY_NAME else env[var]


_AT = re.compile(r"^(?P<msg>.*?)(?: - at `\$(?P<path>[^`]*)`)?$")
_UNKNOWN = re.compile(r"Object contains unknown field `(?P<field>[^`]+)`")


def _explain(message: str, root: type[Any], prefix: str) -> ConfigError:
    match = _AT.match(message)
    assert match is not None  # the pattern matches any string
    msg, path = match.group("msg"), (match.group("path") or "").lstrip(".")
    full = ".".join(filter(None, (prefix, path)))
    unknown = _UNKNOWN.match(msg)
    if unknown:
        struct = _walk(path, root) if path else root
        valid = ", ".join(sorted(f.name for f in msgspec.structs.fields(struct)))
        return ConfigError(f"{full}.{unknown.group('field')}".lstrip("."), f"unknown key (valid keys: {valid})")
    tp = _walk(path, root)
    if typing.get_origin(tp) in (typing.Union, types.UnionType):  # e.g. ``Literal[...] | None``
        tp = next((a for a in typing.get_args(tp) if typing.get_origin(a) is Literal), tp)
    if typing.get_origin(tp) is Literal:
        msg = f"{msg} (valid: {', '.join(str(a) for a in typing.get_args(tp))})"
    return ConfigError(full, msg)


def _unwrap(tp: Any) -> Any:
    """Strip Annotated/containers down to the element type (dict: its value type)."""
    while True:
        origin = typing.get_origin(tp)
        if origin is Annotated or origin in (tuple, list):
            tp = typing.get_args(tp)[0]
        elif origin in (typing.Union, types.UnionType) and type(None) in typing.get_args(tp) \
                and len(typing.get_args(tp)) == 2:  # ``X | None``: X
            tp = next(a for a in typing.get_args(tp) if a is not type(None))
        elif origin is dict:
            tp = typing.get_args(tp)[1]
        else:
            return tp


def _walk(path: str, root: Any = None) -> Any:
    """The type at a dotted config path (``windows.levels[0]``), or None if unknown."""
    tp: Any = Settings if root is None else root
    for part in filter(None, re.split(r"\.|\[[^\]]*\]", path)):
        tp = _unwrap(tp)
        if not (isinstance(tp, type) and issubclass(tp, msgspec.Struct)):
            return None
        hints = typing.get_type_hints(tp, include_extras=True)
        if part not in hints:
            return None
        tp = hints[part]
    return _unwrap(tp)


def _check_detectors(settings: Settings) -> None:
    from detectors.registry import DetectorConfigError, build

    for name, spec in settings.detectors.items():
        try:
            build(spec.kind, spec.params)
        except DetectorConfigError as err:
            param = getattr(err, "param", None)
            path = f"detectors.{name}.params.{param}" if param else f"detectors.{name}.kind"
            raise ConfigError(path, str(err)) from None
    for i, override in enumerate(settings.overrides):
        if override.detector not in settings.detectors:
            valid = ", ".join(sorted(settings.detectors))
            raise ConfigError(
                f"overrides[{i}].detector",
                f"no detector named {override.detector!r} (configured: {valid})",
            )


def _resolve_series(settings: Settings) -> Settings:
    """Write the effective families into ``series`` (so ``config check`` shows them)."""
    if settings.series and settings.windows.levels is not None:
        raise ConfigError("windows.levels", "give either windows.levels (shorthand for lanes) or "
                          "[[series]] sections, not both: move the levels into [[series]]")
    windows = msgspec.structs.replace(settings.windows, levels=None)
    return msgspec.structs.replace(settings, series=settings.series_definitions(), windows=windows)


def _overlaps(a: SeriesSpec, b: SeriesSpec) -> bool:
    """Whether two families can produce the same series key."""
    if a.product != b.product:
        return False
    if (a.origin == "any") != (b.origin == "any"):
        return False
    origins = a.origin == "any" or "each" in (a.origin, b.origin) or a.origin == b.origin
    destinations = "each" in (a.destination, b.destination) or a.destination == b.destination
    return origins and destinations


def _check_series(settings: Settings) -> None:
    seen: dict[str, int] = {}
    for i, spec in enumerate(settings.series):
        if spec.name in seen or spec.name in ("passthrough", "declaration"):
            raise ConfigError(f"series[{i}].name", f"{spec.name!r} is taken (names must be unique; "
                              "passthrough and declaration are reserved)")
        seen[spec.name] = i
        for j, other in enumerate(settings.series[:i]):
            if _overlaps(spec, other):
                raise ConfigError(
                    f"series[{i}]", f"{spec.name!r} and {other.name!r} ({j}) would both hold series "
                    f"like {spec.product}:{'*' if spec.origin == 'any' else 'DE'}>KG:...: "
                    "narrow the origin or destination of one")
        if spec.product in ("hs4", "hs2") and settings.alerts.scope == "chpl":
            raise ConfigError(
                f"series[{i}].product",
                f"{spec.product} series sum goods outside the CHPL only (CHPL goods roll up by "
                "tier, so every rollup is complete in one partition: see streams.keys), and "
                'alerts.scope = "chpl" publishes CHPL alerts only: it could never alert. Use '
                'product = "tier", or set alerts.scope = "all"')
