"""The session WebSocket against a real server process."""

from __future__ import annotations

import json

import httpx
import numpy as np
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from service.process import ServerProcess
from tests.conftest import ALICE, BOB
from tests.service.test_sessions_http import BOX, create_session
from tests.support.images import decode_png, iou, two_objects


def socket_url(server: ServerProcess, sid: str, key: str | None = "alice-key") -> str:
    url = f"{server.ws_url}/v1/sessions/{sid}/ws"
    return f"{url}?api_key={key}" if key else url


def test_rounds_and_undo_over_the_socket(api_server: ServerProcess) -> None:
    image, target, distractor = two_objects()
    sid = create_session(api_server, image, ALICE, model="classical")["session_id"]
    ys, xs = np.nonzero(distractor)
    with connect(socket_url(api_server, sid), max_size=None) as ws:
        ready = json.loads(ws.recv(timeout=30))
        assert ready == {"type": "ready", "session_id": sid, "rounds": 0, "width": 480, "height": 360}

        ws.send(json.dumps({"type": "round", "prompts": [BOX], "request_id": "a"}))
        first = json.loads(ws.recv(timeout=60))
        assert first["type"] == "result" and first["round"] == 1 and first["request_id"] == "a"
        alpha1 = decode_png(ws.recv(timeout=30)) / 255.0
        assert (alpha1[distractor] > 0.5).mean() > 0.8

        click = {"type": "click", "x": float(xs.mean()), "y": float(ys.mean()), "label": "bg"}
        ws.send(json.dumps({"type": "round", "prompts": [click]}))
        second = json.loads(ws.recv(timeout=60))
        assert second["round"] == 2
        alpha2 = decode_png(ws.recv(timeout=30)) / 255.0
        assert (alpha2[distractor] > 0.5).mean() < 0.02 and iou(alpha2, target) > 0.9

        ws.send(json.dumps({"type": "undo"}))
        undone = json.loads(ws.recv(timeout=30))
        assert undone == {"type": "undone", "session_id": sid, "round": 1, "dropped": 2}
        current = decode_png(ws.recv(timeout=30)) / 255.0
        assert np.array_equal(current, alpha1)

        ws.send(json.dumps({"type": "ping"}))
        assert json.loads(ws.recv(timeout=10)) == {"type": "pong"}
    rounds = httpx.get(f"{api_server.url}/v1/sessions/{sid}", headers=ALICE).json()["rounds"]
    assert [r["round"] for r in rounds] == [1]


def test_bad_messages_get_errors_and_the_socket_stays_open(api_server: ServerProcess) -> None:
    image, _, _ = two_objects()
    sid = create_session(api_server, image, ALICE, model="classical")["session_id"]
    cases = [
        ("{not json", "invalid_json"),
        (json.dumps({"type": "dance"}), "invalid_request"),
        (
            json.dumps({"type": "round", "prompts": [{"type": "click", "x": 9999, "y": 1}]}),
            "prompt_out_of_range",
        ),
        (
            json.dumps({"type": "round", "prompts": [{"type": "text", "text": "the red disc"}]}),
            "unsupported_prompt",
        ),
        (json.dumps({"type": "undo"}), "nothing_to_undo"),
        # Issue 11.3-11.4: nesting deeper than the parser's limit, and a lone UTF-16 surrogate
        # in the request id (it used to crash the handler while the error was serialised).
        ('{"type": "round", "prompts": ' + "[" * 5000 + "]" * 5000 + "}", "invalid_json"),
        ('{"type": "round", "prompts": [], "request_id": "\\ud800"}', "invalid_json"),
        (
            json.dumps(
                {
                    "type": "round",
                    "prompts": [{"type": "box", "x0": 5, "y0": 5, "x1": 1, "y1": 9}],
                    "request_id": "bad-box",
                }
            ),
            "invalid_prompt",
        ),
    ]
    with connect(socket_url(api_server, sid), max_size=None) as ws:
        json.loads(ws.recv(timeout=30))
        for text, code in cases:
            ws.send(text)
            message = json.loads(ws.recv(timeout=30))
            assert message["type"] == "error" and message["error"]["code"] == code, message
        ws.send(b"\x00binary")
        assert json.loads(ws.recv(timeout=30))["error"]["code"] == "invalid_message"
        assert message["request_id"] == "bad-box"
        ws.send(json.dumps({"type": "round", "prompts": [BOX]}))
        assert json.loads(ws.recv(timeout=60))["round"] == 1
        ws.recv(timeout=30)


def test_socket_refuses_other_users_and_bad_keys(api_server: ServerProcess) -> None:
    image, _, _ = two_objects()
    sid = create_session(api_server, image, ALICE)["session_id"]
    with connect(socket_url(api_server, sid, "bob-key")) as ws:
        message = json.loads(ws.recv(timeout=30))
        assert message["error"]["code"] == "session_not_found"
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=10)
        assert closed.value.rcvd.code == 4404
    with connect(socket_url(api_server, sid, "wrong")) as ws:
        assert json.loads(ws.recv(timeout=30))["error"]["code"] == "invalid_api_key"
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=10)
        assert closed.value.rcvd.code == 4401
    with connect(socket_url(api_server, sid, None), additional_headers=BOB) as ws:
        assert json.loads(ws.recv(timeout=30))["error"]["code"] == "session_not_found"
    with connect(socket_url(api_server, sid, None), additional_headers=ALICE) as ws:
        assert json.loads(ws.recv(timeout=30))["type"] == "ready"
