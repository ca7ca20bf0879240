"""The service's log lines: one JSON object each, exactly the fields put there."""

from __future__ import annotations

import calendar
import json
import logging

from movierec.service.observe import JsonFormatter


def record(message: str, created: float, **extra) -> logging.LogRecord:
    r = logging.LogRecord("movierec.access", logging.INFO, __file__, 1, message, None, None)
    r.created, r.msecs = created, (created - int(created)) * 1000
    for key, value in extra.items():
        setattr(r, key, value)
    return r


def test_a_request_line_holds_its_fields_and_the_time_to_the_millisecond():
    formatter = JsonFormatter()
    at = calendar.timegm((2026, 12, 3, 12, 0, 5))
    http = {"method": "POST", "route": "/recommendations", "path": "/recommendations",
            "status": 200, "duration_ms": 1.234, "client": "127.0.0.1"}
    line = formatter.format(record("request", at + 0.25, http=http))
    # As README's greps read it: `"level": "error"`.
    assert line == ('{"time": "2026-12-03T12:00:05.250Z", "level": "info", '
                    '"logger": "movierec.access", "message": "request", "method": "POST", '
                    '"route": "/recommendations", "path": "/recommendations", "status": 200, '
                    '"duration_ms": 1.234, "client": "127.0.0.1"}')
    # The second is formatted once and reused: the next second's line has its own.
    assert json.loads(formatter.format(record("a", at + 0.5)))["time"] == \
        "2026-12-03T12:00:05.500Z"
    assert json.loads(formatter.format(record("b", at + 1.125)))["time"] == \
        "2026-12-03T12:00:06.125Z"


def test_values_json_cannot_hold_as_is_still_give_one_json_line():
    formatter = JsonFormatter()
    line = formatter.format(record("odd", 0.0, http={"path": "/\ud800", "raw": b"\xff",
                                                     "obj": object}))
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["path"] == "/\ud800" and entry["raw"] == "b'\\xff'"
    assert entry["obj"] == "<class 'object'>"
    assert json.loads(formatter.format(record("r\u00e9sum\u00e9", 0.0)))["message"] == "r\u00e9sum\u00e9"
