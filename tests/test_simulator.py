"""The synthetic bearing simulator: kinematics, envelope peaks where physics puts them, determinism."""

from __future__ import annotations

import numpy as np
import pytest

from cascadeprune.tasks.bearing.recording import DataError, Recording
from cascadeprune.tasks.bearing.simulator import (
    CLASSES,
    LOAD_RPM,
    BearingGeometry,
    defect_frequency,
    envelope_spectrum,
    rpm_at_load,
    simulate,
)

FAULTS = ("inner", "outer", "ball")
WINDOW = (20.0, 500.0)  # Hz: where the envelope test looks for the defect rate


def window(freqs, mag, lo=WINDOW[0], hi=WINDOW[1]):
    keep = (freqs >= lo) & (freqs <= hi)
    return freqs[keep], mag[keep]


def peak_and_ratio(rec: Recording) -> tuple[float, float]:
    """Frequency of the highest envelope peak in the window, and how far it stands above the median."""
    f, m = window(*envelope_spectrum(rec.signal, rec.fs))
    return float(f[np.argmax(m)]), float(m.max() / np.median(m))


def magnitude_near(rec: Recording, hz: float, half_width: float = 1.0) -> float:
    f, m = envelope_spectrum(rec.signal, rec.fs)
    return float(m[(f >= hz - half_width) & (f <= hz + half_width)].max())


def test_orders_match_cwru_published_values():
    o = BearingGeometry().orders()
    # CWRU's "BSF" (4.7135) is the ball-spot strike rate, twice the spin frequency that orders() gives
    published = {"bpfi": 5.4152, "bpfo": 3.5848, "bsf": 4.7135 / 2, "ftf": 0.39828}
    for name, value in published.items():
        assert o[name] == pytest.approx(value, rel=0.01), name
    assert defect_frequency("ball", 60.0) == pytest.approx(4.7135, rel=0.01)


def test_defect_frequency_per_class():
    o = BearingGeometry().orders()
    assert defect_frequency("normal", 1797) is None
    assert defect_frequency("inner", 1797) == pytest.approx(o["bpfi"] * 1797 / 60)
    assert defect_frequency("outer", 1797) == pytest.approx(o["bpfo"] * 1797 / 60)
    assert defect_frequency("ball", 1797) == pytest.approx(2 * o["bsf"] * 1797 / 60)


def test_rpm_interpolates_and_extrapolates():
    for load, rpm in LOAD_RPM.items():
        assert rpm_at_load(load) == rpm
    assert rpm_at_load(1.5) == pytest.approx((1772 + 1750) / 2)
    assert rpm_at_load(4) == pytest.approx(1710)  # continues the 2->3 hp slope
    assert rpm_at_load(-1) == pytest.approx(1822)  # continues the 0->1 hp slope


@pytest.mark.parametrize("load", [0, 3])
@pytest.mark.parametrize("label", FAULTS)
def test_envelope_peak_at_defect_frequency(label, load):
    rec = simulate(label, load_hp=load, seconds=2.0, seed=3)
    expected = defect_frequency(label, LOAD_RPM[load])
    assert rec.meta["defect_hz"] == pytest.approx(expected)
    peak, ratio = peak_and_ratio(rec)
    tolerance = max(2.0, 1.5 * rec.fs / rec.signal.size)
    assert abs(peak - expected) <= tolerance, (label, load, peak, expected)
    assert ratio > 20, (label, load, ratio)


def test_normal_envelope_has_no_defect_peak():
    normal_ratios = []
    for load in (0, 3):
        rec = simulate("normal", load_hp=load, seconds=2.0, seed=3)
        _, ratio = peak_and_ratio(rec)
        normal_ratios.append(ratio)
        rpm = LOAD_RPM[load]
        # nothing at BPFI or BPFO stands out from the noise floor of the band-passed envelope
        f, m = window(*envelope_spectrum(rec.signal, rec.fs))
        for label in ("inner", "outer"):
            near = np.abs(f - defect_frequency(label, rpm)) <= 2.0
            assert m[near].max() < 5 * np.median(m), (load, label)
    fault_ratio = min(peak_and_ratio(simulate(label, seed=3))[1] for label in FAULTS)
    assert max(normal_ratios) < 6
    assert fault_ratio > 5 * max(normal_ratios)


def test_modulation_inner_at_shaft_ball_at_cage_outer_none():
    inner, outer, ball = (simulate(label, seed=5) for label in ("inner", "outer", "ball"))
    shaft_hz = inner.meta["shaft_hz"]
    cage_hz = BearingGeometry().orders()["ftf"] * shaft_hz
    # a load-zone modulation puts a line at its own rate in the envelope; a fixed defect does not
    assert magnitude_near(inner, shaft_hz) > 5 * magnitude_near(outer, shaft_hz)
    assert magnitude_near(ball, cage_hz) > 5 * magnitude_near(outer, cage_hz)
    # and sidebands around the defect line
    assert magnitude_near(inner, inner.meta["defect_hz"] + shaft_hz) > 5 * magnitude_near(
        outer, inner.meta["defect_hz"] + shaft_hz)


def test_recording_fields():
    rec = simulate("outer", load_hp=2, seconds=0.5, fs=12000.0, seed=4)
    assert isinstance(rec, Recording)
    assert rec.file == "synthetic/outer-2hp-seed4"
    assert rec.label == "outer" and rec.load == 2 and rec.fs == 12000.0
    assert rec.signal.dtype == np.float64 and rec.signal.shape == (6000,)
    assert rec.meta["rpm"] == 1750 and rec.meta["shaft_hz"] == pytest.approx(1750 / 60)
    assert rec.meta["defect_hz"] == pytest.approx(defect_frequency("outer", 1750))
    assert 2700 <= rec.meta["resonance_hz"] <= 3300
    assert simulate("normal", seconds=0.1).meta["defect_hz"] is None
    assert simulate("normal", load_hp=1.5, seconds=0.1).file == "synthetic/normal-1.5hp-seed0"


def test_normal_is_harmonics_plus_noise():
    rec = simulate("normal", seconds=1.0, noise_std=0.05, seed=2)
    # 1x/2x/3x shaft lines stand far above the white-noise floor of the raw spectrum
    spectrum = np.abs(np.fft.rfft(rec.signal))
    freqs = np.fft.rfftfreq(rec.signal.size, 1 / rec.fs)
    floor = np.median(spectrum)
    for k in (1, 2, 3):
        line = spectrum[np.abs(freqs - k * rec.meta["shaft_hz"]) <= 1.5].max()
        assert line > 10 * floor, k
    # a fault with zero severity is the same kind of signal (no strikes)
    silent = simulate("inner", seconds=1.0, severity=0.0, seed=2)
    assert silent.signal.std() == pytest.approx(rec.signal.std(), rel=0.1)
    assert simulate("inner", seconds=1.0, seed=2).signal.std() > 2 * rec.signal.std()


def test_deterministic_by_seed():
    a = simulate("ball", load_hp=1, seconds=0.5, seed=11)
    b = simulate("ball", load_hp=1, seconds=0.5, seed=11)
    np.testing.assert_array_equal(a.signal, b.signal)
    assert a.meta == b.meta
    assert not np.array_equal(a.signal, simulate("ball", load_hp=1, seconds=0.5, seed=12).signal)
    # the class and the load also feed the random stream
    n1 = simulate("normal", load_hp=0, seconds=0.5, seed=11).signal
    n2 = simulate("normal", load_hp=1, seconds=0.5, seed=11).signal
    n3 = simulate("normal", load_hp=0, seconds=0.5, seed=11, geometry=BearingGeometry(n_balls=8)).signal
    assert not np.allclose(n1, n2)
    np.testing.assert_array_equal(n1, n3)  # geometry does not matter without a defect
    ball_noise = simulate("ball", load_hp=0, seconds=0.5, seed=11, severity=0.0).signal
    assert not np.allclose(n1, ball_noise)


def test_higher_load_lower_speed_lower_defect_frequency():
    prev = None
    for load in (0, 1, 2, 3, 3.5):
        rec = simulate("inner", load_hp=load, seconds=0.1)
        if prev is not None:
            assert rec.meta["rpm"] < prev.meta["rpm"]
            assert rec.meta["defect_hz"] < prev.meta["defect_hz"]
        prev = rec


def test_unknown_label_raises():
    with pytest.raises(DataError, match="roller") as info:
        simulate("roller")
    for valid in CLASSES:
        assert valid in str(info.value)
    with pytest.raises(DataError, match="roller"):
        defect_frequency("roller", 1797)


@pytest.mark.parametrize("kwargs", [dict(fs=0.0), dict(fs=-12000.0), dict(seconds=0.0), dict(seconds=1e-5),
                                    dict(seconds=float("nan")), dict(noise_std=-1.0), dict(seed=-1),
                                    dict(fs=4000.0), dict(load_hp=1000.0)])
def test_bad_inputs_raise(kwargs):
    with pytest.raises(DataError):
        simulate("inner", **kwargs)


def test_envelope_spectrum_recovers_modulation_and_checks_band():
    fs = 12000.0
    t = np.arange(int(fs)) / fs
    tone = (1 + 0.5 * np.cos(2 * np.pi * 50 * t)) * np.sin(2 * np.pi * 3000 * t)
    freqs, mag = envelope_spectrum(tone, fs)
    assert freqs.shape == mag.shape == (int(fs) // 2 + 1,)
    f, m = window(freqs, mag)
    assert f[np.argmax(m)] == pytest.approx(50.0, abs=1.0)
    with pytest.raises(DataError):
        envelope_spectrum(tone, 8000.0)  # the default band reaches past Nyquist
    with pytest.raises(DataError):
        envelope_spectrum(tone[:10], fs)  # too short to filter forwards and backwards
