"""EntityNoveltyDetector: never-seen parties shipping CHPL goods stand out, known ones do not."""

from __future__ import annotations

import pickle
import subprocess
import sys

import pytest

from detectors.novelty import _PATTERNS, EntityNoveltyDetector, _KeyFilter


def decl(
    exporter: str, consignee: str, route: str = "DE>KG", tier: str = "1", value: float = 60_000.0
) -> dict:
    return {"exporter_id": exporter, "consignee_id": consignee, "route": route,
            "chpl_tier": tier, "value_eur": value}  # fmt: skip


def warmed(n: int = 200, **params) -> EntityNoveltyDetector:
    """Known parties DE0..DE19 x KG0..KG9 on DE>KG and DE>KZ, all tiers, 50-70k EUR."""
    params.setdefault("capacity", 100_000)
    det = EntityNoveltyDetector(warm_up=n, **params)
    tiers = ("1", "2", "3A", "3B", "4A", "4B")
    for i in range(n):
        x = decl(f"DE{i % 20}", f"KG{i % 10}", ("DE>KG", "DE>KZ")[i % 2], tiers[i % 6],
                 50_000.0 * (1 + 0.2 * ((i // 6) % 3)))  # fmt: skip
        det.learn_one(x)
    return det


def test_new_exporter_shipping_tier1_chips_scores_high_then_low_the_second_time() -> None:
    det = warmed()
    x = decl("DE-NEW", "KG1")
    first = det.score_one(x)
    assert first > 0.6
    assert det.explain_one(x).details["new"] == ["exporter"]
    det.learn_one(x)
    assert det.score_one(x) == 0.0


def test_known_parties_score_zero() -> None:
    det = warmed()
    assert det.score_one(decl("DE3", "KG3")) == 0.0


def test_non_chpl_goods_score_zero_and_are_not_remembered() -> None:
    det = warmed()
    x = decl("DE-NEW", "KG-NEW", tier="")
    assert det.score_one(x) == 0.0
    assert det.explain_one(x).details["reason"] == "not CHPL goods"
    det.learn_one(x)
    # Known from car exports is not known in CHPL trade (red flag 3).
    assert det.score_one(decl("DE-NEW", "KG-NEW", tier="1")) > 0.6


def test_higher_tiers_score_higher() -> None:
    det = warmed()
    scores = [
        det.score_one(decl("DE-NEW", "KG1", tier=t)) for t in ("1", "2", "3A", "3B", "4A", "4B")
    ]
    assert scores == sorted(scores, reverse=True)
    assert scores[0] > 0.5 > scores[-1]


def test_larger_values_score_higher() -> None:
    det = warmed()
    scores = [det.score_one(decl("DE-NEW", "KG1", value=v)) for v in (500.0, 5e4, 5e6)]
    assert scores[0] < scores[1] < scores[2]
    assert scores[2] > 0.85


def test_more_kinds_of_novelty_score_higher() -> None:
    det = warmed()
    pair_only = det.score_one(decl("DE1", "KG2"))  # both known, never together
    route_only = det.score_one(decl("DE1", "KG1", route="PL>AM"))
    exporter = det.score_one(decl("DE-NEW", "KG1"))
    everything = det.score_one(decl("DE-NEW", "KG-NEW", route="PL>AM"))
    assert 0.0 < pair_only < route_only < exporter < everything <= 1.0
    assert pair_only < 0.5 < exporter
    e = det.explain_one(decl("DE1", "KG2"))
    assert e.details["new"] == ["pair"]


def test_nothing_is_novel_during_warm_up_and_non_chpl_does_not_count() -> None:
    det = EntityNoveltyDetector(warm_up=3, capacity=1000)
    for i in range(10):  # non-CHPL: not counted towards warm-up
        det.learn_one(decl(f"X{i}", f"Y{i}", tier=""))
    for i in range(3):
        x = decl(f"DE{i}", f"KG{i}")
        assert det.score_one(x) == 0.0
        assert det.explain_one(x).details["reason"] == "warm-up"
        det.learn_one(x)
    assert det.score_one(decl("DE-NEW", "KG0")) > 0.5


def test_missing_ids_are_not_novel() -> None:
    det = warmed()
    assert det.score_one(decl("", "", route="")) == 0.0
    assert det.score_one(decl("", "KG1")) == 0.0


def test_memory_is_fixed_and_old_keys_are_forgotten_after_two_generations() -> None:
    det = EntityNoveltyDetector(warm_up=0, capacity=500)
    det.learn_one(decl("DE-OLD", "KG-OLD"))
    size = det.state_bytes()
    for i in range(300):  # 4 keys each: two rotations
        det.learn_one(decl(f"DE{i}", f"KG{i}", route=f"R{i}"))
    assert det._keys.rotations >= 2
    assert det.state_bytes() <= size * 1.05
    assert det.score_one(decl("DE-OLD", "KG-OLD")) > 0.5
    assert det.score_one(decl("DE299", "KG299", route="R299")) == 0.0  # recent: still known


def test_false_positive_rate_of_a_full_filter_is_small() -> None:
    kf = _KeyFilter(capacity=20_000, bits_per_key=20)
    for i in range(19_999):
        kf.add(*kf.locate(f"x:DE{i:09d}"))
    probes = 50_000
    hits = sum(kf.contains(*kf.locate(f"x:KG{i:09d}")) for i in range(probes))
    assert hits / probes < 0.004  # theory for a full generation: 0.17 %


def test_memory_for_a_million_keys() -> None:
    det = EntityNoveltyDetector(capacity=1_000_000)
    assert det.memory_bytes() == 5_000_000  # two generations x 1M keys x 20 bits
    assert det.state_bytes() < 5_100_000


def test_hashing_is_stable_across_processes() -> None:
    # Stored filters are only valid if every process hashes keys the same way.
    code = (
        "from detectors.novelty import _KeyFilter, _PATTERNS;"
        "print(_KeyFilter(1000, 20).locate('x:DE123'), _PATTERNS[12345])"
    )
    out = [
        subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            env={"PYTHONHASHSEED": seed},
        ).stdout  # fmt: skip
        for seed in ("1", "2")
    ]
    assert out[0] == out[1]
    assert out[0].strip() == f"{_KeyFilter(1000, 20).locate('x:DE123')} {_PATTERNS[12345]}"
    assert all(bin(m).count("1") == 7 for m in _PATTERNS[:1000])


def test_pickle_round_trip_keeps_known_entities() -> None:
    det = warmed()
    restored = pickle.loads(pickle.dumps(det))
    assert restored.score_one(decl("DE3", "KG3")) == 0.0
    assert restored.score_one(decl("DE-NEW", "KG1")) == det.score_one(decl("DE-NEW", "KG1"))


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"warm_up": -1}, "warm_up"),
        ({"capacity": 0}, "capacity"),
        ({"bits_per_key": 2}, "bits_per_key"),
        ({"value_alpha": 0.0}, "value_alpha"),
    ],
)
def test_constructor_rejects_bad_values_naming_the_parameter(params: dict, name: str) -> None:
    with pytest.raises(ValueError, match=name):
        EntityNoveltyDetector(**params)
