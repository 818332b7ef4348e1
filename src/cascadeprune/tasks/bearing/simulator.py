"""Synthetic bearing vibration with the physics of a localised defect, shaped like the CWRU rig.

A spall on a race or ball is struck once per pass. Each strike is a short impulse that rings the
housing's structural resonance (a few kHz) for a millisecond or two, so the fault lives in the
*envelope* of the high-frequency band, repeating at the kinematic defect frequency:

- ``outer``: BPFO x shaft. The outer race is fixed, so the defect sits still in the load zone and
  every strike is equally hard (no modulation);
- ``inner``: BPFI x shaft. The defect turns with the shaft through the load zone, so strikes are
  amplitude-modulated once per shaft turn;
- ``ball``: 2 x BSF x shaft (the spot hits the inner and the outer race once per spin turn each),
  modulated at the cage frequency FTF because the ball is carried through the load zone by the cage;
- ``normal``: no impulses.

Every class also gets 1x/2x/3x shaft harmonics (residual unbalance and misalignment) and white noise.
Load enters as speed: more load, lower rpm (:data:`LOAD_RPM`, the CWRU speeds), lower defect rates.
Strike intervals jitter by about 1.5 % because rolling elements slip.

Example::

    rec = simulate("inner", load_hp=2, seed=7)           # 2 s at 12 kHz, a Recording
    freqs, mag = envelope_spectrum(rec.signal, rec.fs)     # peak near rec.meta["defect_hz"]
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.signal import butter, hilbert, sosfiltfilt

from cascadeprune.tasks.bearing.recording import DataError, Recording

CLASSES = ("normal", "inner", "outer", "ball")
LOAD_RPM = {0: 1797, 1: 1772, 2: 1750, 3: 1730}  # CWRU motor load (hp) -> shaft speed (rpm)

RESONANCE_HZ = 3000.0  # nominal structural resonance excited by each strike
RESONANCE_SPREAD = 0.10  # +-10 % per seed: housings and sensor mounts differ
DAMPING_RATIO = 0.07  # at 3 kHz the ringing falls to e^-2.6 within 2 ms
SLIP_JITTER = 0.015  # std of the relative change of each strike interval
AMPLITUDE_JITTER = 0.10  # std of the relative strike-to-strike amplitude change
INNER_MODULATION = 0.5  # depth of the once-per-turn load-zone modulation
BALL_MODULATION = 0.5  # depth of the once-per-cage-turn load-zone modulation
SHAFT_HARMONICS = (0.03, 0.015, 0.01)  # amplitudes of 1x, 2x, 3x shaft frequency


@dataclass(frozen=True)
class BearingGeometry:
    """Rolling-element bearing dimensions; defaults are the SKF 6205-2RS drive-end bearing of CWRU."""

    n_balls: int = 9
    ball_diameter_in: float = 0.3126
    pitch_diameter_in: float = 1.537
    contact_angle_deg: float = 0.0

    def orders(self) -> dict[str, float]:
        """Defect frequencies as multiples of the shaft frequency (outer race fixed).

        ``bsf`` is the ball *spin* frequency. CWRU's table lists 4.7135 under "BSF", which is twice
        the spin (4.7135 = 2 x 2.3567): the rate at which a ball spot strikes the races, as returned
        by :func:`defect_frequency` for ``ball``."""
        ratio = self.ball_diameter_in / self.pitch_diameter_in * math.cos(math.radians(self.contact_angle_deg))
        return {
            "bpfo": self.n_balls / 2 * (1 - ratio),
            "bpfi": self.n_balls / 2 * (1 + ratio),
            "bsf": self.pitch_diameter_in / (2 * self.ball_diameter_in) * (1 - ratio**2),
            "ftf": 0.5 * (1 - ratio),
        }


def rpm_at_load(load_hp: float) -> float:
    """Shaft speed for a load in hp: linear between the CWRU loads, extended linearly beyond them."""
    loads = sorted(LOAD_RPM)
    rpms = [float(LOAD_RPM[l]) for l in loads]
    if loads[0] <= load_hp <= loads[-1]:
        return float(np.interp(load_hp, loads, rpms))
    # outside the table, continue the nearest end segment rather than flattening out
    i = 0 if load_hp < loads[0] else len(loads) - 2
    slope = (rpms[i + 1] - rpms[i]) / (loads[i + 1] - loads[i])
    return rpms[i] + slope * (load_hp - loads[i])


def defect_frequency(label: str, rpm: float, geometry: BearingGeometry = BearingGeometry()) -> float | None:
    """Strike rate in Hz of a defect of class ``label`` at ``rpm``; None for ``normal``."""
    _check_label(label)
    shaft_hz = rpm / 60.0
    orders = geometry.orders()
    return {
        "normal": None,
        "inner": orders["bpfi"] * shaft_hz,
        "outer": orders["bpfo"] * shaft_hz,
        "ball": 2 * orders["bsf"] * shaft_hz,
    }[label]


def simulate(label: str, load_hp: float = 0, seconds: float = 2.0, fs: float = 12000.0, seed: int = 0,
             severity: float = 1.0, noise_std: float = 0.05,
             geometry: BearingGeometry = BearingGeometry()) -> Recording:
    """One synthetic drive-end acceleration record (arbitrary units, roughly g) of class ``label``.

    ``severity`` scales the strikes (0 leaves only harmonics and noise). The same arguments always
    give the same signal; the random stream also depends on the class and the load, so classes and
    loads simulated with one seed are not copies of each other's noise."""
    _check_label(label)
    for name, value in (("load_hp", load_hp), ("seconds", seconds), ("fs", fs), ("severity", severity),
                        ("noise_std", noise_std)):
        if not math.isfinite(value):
            raise DataError(f"simulate({label!r}): {name} must be finite, got {value}")
    if fs <= 0:
        raise DataError(f"simulate({label!r}): fs must be positive, got {fs}")
    n = int(round(seconds * fs))
    if n < 1:
        raise DataError(f"simulate({label!r}): seconds * fs = {seconds} * {fs} gives no samples")
    if severity < 0 or noise_std < 0:
        raise DataError(f"simulate({label!r}): severity and noise_std must be >= 0, got {severity}, {noise_std}")
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise DataError(f"simulate({label!r}): seed must be a non-negative integer, got {seed!r}")
    rpm = rpm_at_load(load_hp)
    if rpm <= 0:
        raise DataError(f"simulate({label!r}): load {load_hp} hp extrapolates to a non-positive speed ({rpm} rpm)")
    max_resonance = RESONANCE_HZ * (1 + RESONANCE_SPREAD)
    if fs <= 2 * max_resonance:
        # below this the ringing would alias onto the envelope band and the record would be nonsense
        raise DataError(f"simulate({label!r}): fs = {fs} Hz cannot carry the ~{RESONANCE_HZ:g} Hz resonance; "
                        f"use fs > {2 * max_resonance:g} Hz and resample afterwards")

    rng = _rng(seed, label, load_hp)
    shaft_hz = rpm / 60.0
    defect_hz = defect_frequency(label, rpm, geometry)
    # drawn for every class so the resonance of a seed does not depend on which class is simulated
    resonance_hz = RESONANCE_HZ * (1 + rng.uniform(-RESONANCE_SPREAD, RESONANCE_SPREAD))
    t = np.arange(n) / fs

    x = np.zeros(n)
    for k, amplitude in enumerate(SHAFT_HARMONICS, start=1):
        x += amplitude * np.sin(2 * np.pi * k * shaft_hz * t + rng.uniform(0, 2 * np.pi))
    if defect_hz is not None and severity > 0:
        times = _strike_times(defect_hz, n / fs, rng)
        gains = severity * (1 + AMPLITUDE_JITTER * rng.standard_normal(times.size))
        if label == "inner":
            gains *= _modulation(times, shaft_hz, INNER_MODULATION, rng)
        elif label == "ball":
            gains *= _modulation(times, geometry.orders()["ftf"] * shaft_hz, BALL_MODULATION, rng)
        x += _ring(times, gains, resonance_hz, fs, n)
    x += noise_std * rng.standard_normal(n)

    return Recording(
        file=f"synthetic/{label}-{load_hp:g}hp-seed{seed}",
        signal=x,
        fs=float(fs),
        label=label,
        load=float(load_hp),
        meta={"rpm": rpm, "shaft_hz": shaft_hz, "defect_hz": defect_hz, "resonance_hz": resonance_hz,
              "severity": severity, "noise_std": noise_std, "seed": seed},
    )


def envelope_spectrum(x: np.ndarray, fs: float,
                      band: tuple[float, float] = (2000.0, 5000.0)) -> tuple[np.ndarray, np.ndarray]:
    """Envelope analysis: band-pass around the resonance, Hilbert envelope, spectrum of that.

    Returns ``(freqs, magnitude)`` of the rFFT of the mean-removed, Hann-windowed envelope; defect
    rates show up as peaks (with harmonics and modulation sidebands) even when the raw spectrum
    hides them. The window matters: without it a defect line that falls between two bins loses up
    to a third of its height (scalloping) and a harmonic that happens to sit on a bin can outgrow it."""
    x = np.asarray(x, dtype=np.float64)
    low, high = band
    if not 0 < low < high < fs / 2:
        raise DataError(f"envelope_spectrum: band {band} Hz must satisfy 0 < low < high < fs/2 = {fs / 2:g}")
    sos = butter(4, [low, high], btype="bandpass", fs=fs, output="sos")
    padlen = 3 * (2 * len(sos) + 1)
    if x.ndim != 1 or x.size <= padlen:
        raise DataError(f"envelope_spectrum: need a 1-D signal longer than {padlen} samples, got shape {x.shape}")
    envelope = np.abs(hilbert(sosfiltfilt(sos, x, padlen=padlen)))
    envelope -= envelope.mean()  # the envelope's mean would otherwise leak into the low bins
    return np.fft.rfftfreq(x.size, 1 / fs), np.abs(np.fft.rfft(envelope * np.hanning(x.size)))


def _check_label(label: str) -> None:
    if label not in CLASSES:
        raise DataError(f"unknown bearing class {label!r}; valid classes: {', '.join(CLASSES)}")


def _rng(seed: int, label: str, load_hp: float) -> np.random.Generator:
    # the load's float bits (not a rounded value) so 1.0 and 1.001 hp get different streams;
    # + 0.0 folds -0.0 into 0.0
    load_bits = int(np.float64(load_hp + 0.0).view(np.uint64))
    return np.random.default_rng([int(seed), CLASSES.index(label), load_bits])


def _strike_times(rate_hz: float, duration: float, rng: np.random.Generator) -> np.ndarray:
    """Strike instants over ``duration`` s: slip makes each interval jitter, and the jitter accumulates."""
    period = 1.0 / rate_hz
    count = int(math.ceil(duration * rate_hz)) + 2
    intervals = period * (1 + SLIP_JITTER * rng.standard_normal(count))
    intervals = np.maximum(intervals, 0.5 * period)  # a strike never comes back before the previous one
    # the first strike lands anywhere in the first period: the record starts at an arbitrary angle
    times = rng.uniform(0, period) + np.concatenate([[0.0], np.cumsum(intervals[:-1])])
    return times[times < duration]


def _modulation(times: np.ndarray, rate_hz: float, depth: float, rng: np.random.Generator) -> np.ndarray:
    """Load-zone gain at each strike, rising and falling once per turn of whatever carries the defect."""
    return 1 + depth * np.cos(2 * np.pi * rate_hz * times + rng.uniform(0, 2 * np.pi))


def _ring(times: np.ndarray, gains: np.ndarray, resonance_hz: float, fs: float, n: int) -> np.ndarray:
    """Sum of damped sinusoids, one per strike, each started at its exact (sub-sample) instant."""
    decay = DAMPING_RATIO * 2 * np.pi * resonance_hz  # 1/s
    omega_d = 2 * np.pi * resonance_hz * math.sqrt(1 - DAMPING_RATIO**2)
    length = int(math.ceil(9.2 / decay * fs)) + 1  # until the ringing is below 1e-4 of its start
    first = np.ceil(times * fs).astype(np.int64)
    index = first[:, None] + np.arange(length)[None, :]
    lag = index / fs - times[:, None]
    pulses = gains[:, None] * np.exp(-decay * lag) * np.sin(omega_d * lag)
    keep = index < n
    out = np.zeros(n)
    np.add.at(out, index[keep], pulses[keep])
    return out
