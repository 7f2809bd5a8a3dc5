"""The real-history set builder's generation options: chosen lead shapes, audio share and browsers."""

from __future__ import annotations

import argparse
import random
from dataclasses import asdict
from datetime import timedelta

import pytest

from bench.linking_sets import (
    BROWSER_SUFFIX,
    NoiseFactory,
    apply_overrides,
    draw_parameters,
    lead_time,
    main,
    parse_browsers,
    share,
)


def test_without_overrides_the_drawn_parameters_stay_as_they_were():
    drawn = draw_parameters(20261215, None, None, 70)
    assert asdict(apply_overrides(draw_parameters(20261215, None, None, 70), 20261215)) == asdict(drawn)
    assert "overrides" not in drawn.extra


def test_overrides_replace_only_what_was_chosen_and_are_recorded():
    drawn = draw_parameters(7, 3000, 25, 60)
    params = apply_overrides(draw_parameters(7, 3000, 25, 60), 7, lead_shape="late-fix", audio_share=0.3,
                             browsers={"Microsoft Edge": 3, "Arc": 1})
    assert params.lead_time["shape"] == "late-fix" and 0.65 <= params.lead_time["late_share"] <= 0.85
    assert params.audio_share == 0.3
    assert params.browser_weights == {"Microsoft Edge": 3, "Arc": 1}
    assert params.extra["overrides"] == {"lead_shape": "late-fix", "audio_share": 0.3,
                                         "browsers": {"Microsoft Edge": 3, "Arc": 1}}
    for key in ("ocr_rate", "accessibility_share", "noise_frames", "meeting_sessions", "distractors",
                "capture_tail_days", "distractor_audio_share", "noise_near_commit_share"):
        assert getattr(params, key) == getattr(drawn, key)


def test_late_fix_leads_stay_within_1_hour_and_5_days_and_are_mostly_a_day_or_more():
    params = apply_overrides(draw_parameters(11, None, None, 70), 11, lead_shape="late-fix")
    rng = random.Random(1)
    leads = [lead_time(params, rng) for _ in range(2000)]
    assert all(timedelta(hours=1) <= lead <= timedelta(hours=120) for lead in leads)
    late = sum(lead >= timedelta(hours=24) for lead in leads) / len(leads)
    assert abs(late - params.lead_time["late_share"]) < 0.05


@pytest.mark.parametrize("shape", ["log-uniform", "recent-skew", "bimodal"])
def test_every_chosen_shape_gives_leads_within_bounds(shape):
    params = apply_overrides(draw_parameters(3, None, None, 70), 3, lead_shape=shape)
    rng = random.Random(2)
    assert all(timedelta(hours=1) <= lead_time(params, rng) <= timedelta(hours=120) for _ in range(500))


def test_noise_web_pages_use_the_chosen_browsers():
    factory = NoiseFactory(random.Random(5), "rs", browsers={"Microsoft Edge": 2, "Brave Browser": 1})
    screens = [factory.docs(3, adjacent=False) for _ in range(20)] + [factory.news(3) for _ in range(20)] + [
        factory.work_issue(3) for _ in range(20)]
    assert {app for app, *_ in screens} == {"Microsoft Edge", "Brave Browser"}
    for app, window, *_ in screens:
        assert window.endswith(BROWSER_SUFFIX[app])


def test_noise_without_chosen_browsers_keeps_the_old_mix():
    factory = NoiseFactory(random.Random(5), "py")
    assert {factory.docs(2, adjacent=True)[0] for _ in range(60)} == {"Google Chrome", "Firefox", "Safari"}
    assert factory.news(2)[:2] == ("Safari", "Hacker News")


def test_browser_and_share_options_are_parsed_or_refused():
    assert parse_browsers("Microsoft Edge=5, Firefox=2") == {"Microsoft Edge": 5, "Firefox": 2}
    for bad in ("", "Netscape=3", "Firefox", "Firefox=0", "Firefox=x"):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_browsers(bad)
    assert share("0.35") == 0.35
    with pytest.raises(argparse.ArgumentTypeError):
        share("1.5")


def test_the_command_line_refuses_an_unknown_browser(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main([str(tmp_path), str(tmp_path / "threads.json"), str(tmp_path / "out"), "--browsers", "Netscape=1"])
    assert "Netscape=1" in capsys.readouterr().err
