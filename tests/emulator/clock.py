"""The emulator's clock: wall-clock time plus an offset, per region if asked.

CloudWatch evaluates alarms against its clock, once a minute, on the minute,
not when data arrives. Tests cannot wait minutes, so emulator time is the wall
clock plus an offset they move; each region may have its own offset on top of
the shared one, so tests sharing an emulator (one region each) never move each
other's time. Moving the clock runs whatever happens at each instant crossed
(strict_cloudwatch registers its alarm evaluation with `on_instant`).

Control API (faults.py routes it):

    GET  /_emulator/clock?region=R      ({"now": "<ISO 8601>", "epoch": s, "offset": s})
    POST /_emulator/clock {"advance_seconds": N, "region": R}
         moves R's clock (every region's when R is absent) N seconds on and
         evaluates at every minute boundary crossed; {"set": "<ISO 8601>" or
         epoch seconds, "region": R} puts R's clock at that instant (backwards
         too: a test on a fixed date), evaluating nothing.

A background thread also evaluates every `alarm_evaluation_seconds` of real
time (emulator.py --alarm-evaluation-seconds, or POST /_emulator/alarm-clock
{"evaluation_seconds": S}), at each region's latest minute boundary.
"""

import datetime as dt
import math
import threading
import time

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
MINUTE = 60
LOCK = threading.RLock()
SETTINGS = {"alarm_evaluation_seconds": 60.0}

_shared_offset = 0.0
_region_offsets = {}
# Called with a region (None: every region) to evaluate at its latest instant.
_listeners = []
_wakeup = threading.Event()


def on_instant(listener):
    _listeners.append(listener)


def now_epoch(region=None):
    with LOCK:
        return time.time() + _shared_offset + _region_offsets.get(region, 0.0)


def now(region=None):
    return EPOCH + dt.timedelta(seconds=now_epoch(region))


def last_instant(region=None):
    """The latest evaluation instant (a minute boundary) at or before now."""
    return math.floor(now_epoch(region) / MINUTE) * MINUTE


def _iso(epoch):
    return (EPOCH + dt.timedelta(seconds=epoch)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _fire(region):
    for listener in list(_listeners):
        listener(region)


def advance(seconds, region=None):
    """Moves the clock on a minute at most at a time, evaluating after each step,
    so every minute boundary crossed is an evaluation instant."""
    global _shared_offset
    seconds = float(seconds)
    if seconds < 0:
        raise ValueError("advance_seconds must not be negative: set the clock instead")
    left = seconds
    while left > 0:
        step = min(MINUTE, left)
        with LOCK:
            if region is None:
                _shared_offset += step
            else:
                _region_offsets[region] = _region_offsets.get(region, 0.0) + step
        left -= step
        _fire(region)


def set_to(at, region=None):
    """Puts the clock (of `region`, or the shared one) at `at`."""
    global _shared_offset
    if isinstance(at, str):
        parsed = dt.datetime.fromisoformat(at.replace("Z", "+00:00"))
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=dt.timezone.utc)
        target = (parsed - EPOCH).total_seconds()
    else:
        target = float(at)
    with LOCK:
        if region is None:
            _shared_offset += target - now_epoch(None)
        else:
            current = now_epoch(region)
            _region_offsets[region] = _region_offsets.get(region, 0.0) + target - current


def describe(region=None):
    epoch = now_epoch(region)
    return {"now": _iso(epoch), "epoch": epoch, "offset": epoch - time.time()}


def _tick_forever():
    while True:
        _wakeup.wait(max(0.05, float(SETTINGS["alarm_evaluation_seconds"])))
        _wakeup.clear()
        try:
            _fire(None)
        except Exception:  # noqa: BLE001 (a failed round must not stop the clock)
            pass


def start():
    threading.Thread(target=_tick_forever, daemon=True, name="alarm-clock").start()


def set_evaluation_seconds(seconds):
    seconds = float(seconds)
    if seconds <= 0:
        raise ValueError("evaluation_seconds must be positive")
    SETTINGS["alarm_evaluation_seconds"] = seconds
    _wakeup.set()


# ---------------------------------------------------------------- control API


def _first(query, key):
    values = (query or {}).get(key) or [None]
    return values[0]


def _get_clock(request, query):
    return describe(_first(query, "region") or request.get("region"))


def _post_clock(request, query):
    region = request.get("region") or _first(query, "region")
    if "set" in request:
        set_to(request["set"], region)
    if "advance_seconds" in request:
        advance(request["advance_seconds"], region)
    return describe(region)


def _post_alarm_clock(request, query):
    if "evaluation_seconds" in request:
        set_evaluation_seconds(request["evaluation_seconds"])
    return {"evaluation_seconds": SETTINGS["alarm_evaluation_seconds"]}


def register(register_control):
    register_control("GET", "clock", _get_clock)
    register_control("POST", "clock", _post_clock)
    register_control("POST", "alarm-clock", _post_alarm_clock)
