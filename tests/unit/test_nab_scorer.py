"""The NAB scorer: hand-computed cases and reproduction of NAB's published results."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bench.nab import corpus, scoring
from bench.nab.scoring import CorpusScorer, FileLabels, Profile, score_file

STD = Profile("standard", tp=1.0, fp=0.11, fn=1.0)
LOW_FP = Profile("reward_low_FP_rate", tp=1.0, fp=0.22, fn=1.0)
LOW_FN = Profile("reward_low_FN_rate", tp=1.0, fp=0.11, fn=2.0)


def sig(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


# -- scaled sigmoid and probation -------------------------------------------------


def test_scaled_sigmoid_values():
    assert scoring.scaled_sigmoid(0.0) == 0.0
    assert scoring.scaled_sigmoid(-1.0) == pytest.approx(2 * sig(5) - 1)
    assert scoring.scaled_sigmoid(-1.0) == pytest.approx(0.9866142981514305)
    assert scoring.scaled_sigmoid(1.0) == pytest.approx(-0.9866142981514305)
    assert scoring.scaled_sigmoid(3.0) == pytest.approx(2 * sig(-15) - 1)
    assert scoring.scaled_sigmoid(3.0000001) == -1.0
    assert scoring.scaled_sigmoid(-0.5) == pytest.approx(2 * sig(2.5) - 1)


def test_probationary_length():
    assert scoring.probationary_length(100) == 15
    assert scoring.probationary_length(4032) == 604
    assert scoring.probationary_length(5000) == 750
    assert scoring.probationary_length(22695) == 750


# -- a toy file ---------------------------------------------------------------------
# 40 rows, P = 6; window A = rows 10..19 (W=10), window B = rows 30..34 (W=5).
TOY = FileLabels(n_rows=40, windows=((10, 19), (30, 34)))


def only(*rows: int, n: int = 40) -> list[float]:
    s = [0.0] * n
    for r in rows:
        s[r] = 1.0
    return s


def test_nothing_detected_costs_fn_per_window():
    assert score_file(TOY, only(), 0.5, STD) == pytest.approx(-2.0)
    assert score_file(TOY, only(), 0.5, LOW_FN) == pytest.approx(-4.0)


def test_first_row_of_window_scores_a_tp():
    # window A hit on its first row, window B missed
    assert score_file(TOY, only(10), 0.5, STD) == pytest.approx(1.0 - 1.0)
    assert score_file(TOY, only(10, 30), 0.5, STD) == pytest.approx(2.0)


def test_later_rows_in_window_are_worth_less_and_only_the_best_counts():
    w = 10
    mid = (2 * sig(-5 * (-(19 - 15 + 1) / w)) - 1) / (2 * sig(5) - 1)
    assert mid == pytest.approx(0.8598, abs=1e-4)  # y = -0.5
    assert score_file(TOY, only(15, 30), 0.5, STD) == pytest.approx(1.0 + mid)
    # several detections in one window: earliest (largest) counts, no extra cost
    assert score_file(TOY, only(12, 15, 19, 30), 0.5, STD) == score_file(
        TOY, only(12, 30), 0.5, STD
    )
    last = (2 * sig(-5 * (-1 / w)) - 1) / (2 * sig(5) - 1)
    assert last == pytest.approx(0.2482, abs=1e-4)  # y = -1/W: small for wide windows
    assert score_file(TOY, only(19, 30), 0.5, STD) == pytest.approx(1.0 + last)


def test_fp_far_from_windows_costs_a_fp():
    # row 8 is before any window: full cost
    assert score_file(TOY, only(8, 10, 30), 0.5, STD) == pytest.approx(2.0 - 0.11)
    assert score_file(TOY, only(8, 10, 30), 0.5, LOW_FP) == pytest.approx(2.0 - 0.22)


def test_fp_right_after_a_window_is_cheap_and_grows_with_distance():
    # row 20: one past window A (width 10) -> y = 1/9
    c20 = 0.11 * (2 * sig(-5 / 9) - 1)
    assert score_file(TOY, only(10, 20, 30), 0.5, STD) == pytest.approx(2.0 + c20)
    assert -0.11 < c20 < -0.02
    # row 38: 4 past window B (width 5) -> y = 4/4 = 1
    c38 = 0.11 * (2 * sig(-5) - 1)
    assert score_file(TOY, only(10, 30, 38), 0.5, STD) == pytest.approx(2.0 + c38)


def test_detections_in_probation_are_ignored():
    assert score_file(TOY, only(0, 3, 5, 10, 30), 0.5, STD) == pytest.approx(2.0)
    assert score_file(TOY, only(6, 10, 30), 0.5, STD) == pytest.approx(2.0 - 0.11)


def test_threshold_is_greater_or_equal():
    s = only(10, 30)
    assert score_file(TOY, s, 1.0, STD) == pytest.approx(2.0)
    assert score_file(TOY, s, 1.0000001, STD) == pytest.approx(-2.0)


def test_optimiser_matches_brute_force_and_normalises():
    files = {
        "a/x.csv": TOY,
        "a/y.csv": FileLabels(30, ((20, 24),)),
        "b/z.csv": FileLabels(25, ()),
    }
    sc = CorpusScorer(files, (STD, LOW_FP, LOW_FN))
    assert sc.n_windows == 3
    rng = np.random.default_rng(3)
    for _ in range(20):
        scores = {k: np.round(rng.random(f.n_rows), 1) for k, f in files.items()}
        for prof in (STD, LOW_FP, LOW_FN):
            ths, raws = sc.sweep(scores, prof.name)
            assert ths[0] == 1.1 and raws[0] == pytest.approx(-prof.fn * 3)
            for th, raw in zip(ths, raws, strict=True):
                brute = sum(score_file(files[k], scores[k], th, prof) for k in files)
                assert raw == pytest.approx(brute)
                assert sc.raw_at(scores, th, prof.name) == pytest.approx(brute)
            th, raw = sc.optimize(scores, prof.name)
            assert raw == pytest.approx(max(raws))
    perfect = {k: np.zeros(f.n_rows) for k, f in files.items()}
    for k, f in files.items():
        for a, _ in f.windows:
            perfect[k][a] = 1.0
    res = sc.evaluate(perfect)
    assert all(r.normalized == pytest.approx(100.0) for r in res.values())
    thresholds = {p.name: 0.5 for p in (STD, LOW_FP, LOW_FN)}
    null = sc.evaluate({k: np.zeros(f.n_rows) for k, f in files.items()}, thresholds)
    assert all(r.normalized == pytest.approx(0.0) for r in null.values())


# -- reproduction of the published results -----------------------------------------


@pytest.fixture(scope="module")
def nab():
    try:
        root = corpus.find_nab_root()
    except FileNotFoundError as exc:  # the corpus is part of the project's shared data
        pytest.fail(str(exc))
    data = corpus.load_corpus(root)
    sc = CorpusScorer({k: f.labels for k, f in data.items()}, corpus.load_profiles(root))
    return root, sc


@pytest.mark.parametrize("detector", ["numenta", "windowedGaussian", "null"])
def test_reproduces_final_results_at_shipped_thresholds(nab, detector):
    root, sc = nab
    assert sc.n_windows == 116 and len(sc.keys) == 58
    scores = corpus.read_results_dir(root / "reference_results", detector, sc.keys)
    shipped = corpus.load_shipped_thresholds(root)[detector]
    expected = corpus.load_final_results(root)[detector]
    res = sc.evaluate(scores, shipped)
    for profile in ("standard", "reward_low_FP_rate", "reward_low_FN_rate"):
        assert res[profile].normalized == pytest.approx(expected[profile], abs=0.5), profile
        assert not res[profile].optimized
    # the published headline numbers
    headline = {"numenta": 70.10, "windowedGaussian": 39.65, "null": 0.0}[detector]
    assert res["standard"].normalized == pytest.approx(headline, abs=0.01)
    # the optimiser finds a threshold at least as good as the shipped one
    opt = sc.evaluate(scores)
    for profile, r in opt.items():
        assert r.optimized
        assert r.normalized >= res[profile].normalized - 1e-9
    if detector == "numenta":
        assert opt["standard"].normalized == pytest.approx(70.10, abs=0.01)
        assert opt["reward_low_FP_rate"].normalized == pytest.approx(63.21, abs=0.01)


# -- the runner: streaming, NAB layout ------------------------------------------------


def test_runner_streams_without_look_ahead_and_writes_nab_layout(nab, tmp_path):
    from bench.nab import run

    root, sc = nab
    data = corpus.load_corpus(root)
    f = data["realKnownCause/nyc_taxi.csv"]
    full = run.run_series(run.default_detector(), f.epoch, f.values)
    cut = 3000
    prefix = run.run_series(run.default_detector(), f.epoch[:cut], f.values[:cut])
    assert np.array_equal(full[:cut], prefix)  # the future never changes a past score
    assert full.min() >= 0.0 and full.max() <= 1.0
    path = corpus.write_results_file(tmp_path, "tw", f, full)
    assert path == tmp_path / "tw" / "realKnownCause" / "tw_nyc_taxi.csv"
    back = corpus.read_results_dir(tmp_path, "tw", [f.key])[f.key]
    assert np.array_equal(back, full)
    with path.open() as fh:
        assert fh.readline().strip() == "timestamp,value,anomaly_score,label"
        assert fh.readline().startswith("2014-07-01 00:00:00,10844,")
