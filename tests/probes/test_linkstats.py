from __future__ import annotations

import pytest

from agent.domain.linkstats import MAX_SUMMARY_RTTS, LinkWindow, SummaryBuilder, jitter, percentile


def test_percentile_nearest_rank() -> None:
    values = sorted(float(v) for v in range(1, 101))
    assert (
        percentile(values, 50) == 50.0
        and percentile(values, 95) == 95.0
        and percentile(values, 100) == 100.0
    )
    assert percentile([7.0], 95) == 7.0 and percentile([], 50) is None


def test_jitter_is_mean_absolute_difference() -> None:
    assert jitter([10.0, 20.0, 10.0, 40.0]) == pytest.approx((10 + 10 + 30) / 3)
    assert jitter([5.0]) is None


def test_window_figures_and_expiry() -> None:
    w = LinkWindow(600)
    w.add_cycle(0, True, [(True, 100.0), (True, 300.0)])
    w.add_cycle(60, False, [(False, None), (False, None)])
    w.add_cycle(120, True, [(True, 200.0), (False, None)])
    s = w.stats(120)
    assert (s.cycles, s.up_cycles, s.attempts, s.failures) == (3, 2, 6, 3)
    assert s.availability == pytest.approx(2 / 3) and s.loss == pytest.approx(0.5)
    assert s.rtt_p50_ms == 200.0 and s.rtt_p95_ms == 300.0
    assert s.jitter_ms == pytest.approx((200 + 100) / 2)
    later = w.stats(661)  # the first two cycles have left the window
    assert (later.cycles, later.attempts, later.rtt_p50_ms) == (1, 2, 200.0)
    assert w.stats(2000).cycles == 0 and w.stats(2000).availability is None


def test_summary_telecom() -> None:
    b = SummaryBuilder("telecom", 1000.0, 0.0)
    for i in range(60):
        up = not 20 <= i < 30  # a ten-minute outage
        b.add_cycle(i * 60.0, up, [(up, 50.0 + i if up else None)])
    s = b.build(4600.0, 3600.0)
    assert s["period_start"] == 1000.0 and s["period_end"] == 4600.0 and s["seconds"] == 3600.0
    assert s["cycles"] == 60 and s["availability"] == pytest.approx(50 / 60, abs=1e-4)
    assert s["loss"] == pytest.approx(10 / 60, abs=1e-4)
    assert s["longest_outage_s"] == 600.0
    assert s["rtt_max_ms"] == 109.0 and s["rtt_p50_ms"] is not None
    assert "lock_fraction" not in s


def test_summary_satellite_lock_time_is_time_weighted_and_gaps_are_unknown() -> None:
    b = SummaryBuilder("satellite", 0.0, 0.0, hold_cap=120.0)
    b.add_lock(0.0, True)
    b.add_lock(60.0, True)
    b.add_lock(120.0, False)  # 120 s locked so far
    b.add_lock(180.0, True)  # 60 s unlocked
    b.add_lock(1000.0, True)  # gap of 820 s: only 120 s counted (agent was down)
    b.add_signal(-40.0, None, 9.0, 1e-7)
    b.add_signal(-44.0, None, 7.0, 3e-7)
    b.add_datacast(1000, 1)
    b.add_datacast(500, None)
    s = b.build(1060.0, 1060.0)  # final 60 s locked
    assert s["lock_seconds"] == 120 + 120 + 60 and s["unlock_seconds"] == 60
    assert s["lock_fraction"] == pytest.approx(300 / 360, abs=1e-4)
    assert s["signal_dbm_avg"] == -42.0 and s["signal_dbm_min"] == -44.0 and s["cnr_db_min"] == 7.0
    assert (
        s["post_ber_max"] == 3e-7
        and s["datacast_rx_bytes"] == 1500
        and s["datacast_rx_errors"] == 1
    )


def test_summary_memory_is_bounded() -> None:
    b = SummaryBuilder("telecom", 0.0, 0.0)
    for i in range(MAX_SUMMARY_RTTS + 500):
        b.add_cycle(float(i), True, [(True, float(i))])
    assert len(b.rtts) == MAX_SUMMARY_RTTS
    assert b.build(1.0, 1.0)["rtt_max_ms"] == float(MAX_SUMMARY_RTTS + 499)
