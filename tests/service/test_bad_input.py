"""Bad input gets a clear 4xx error with a stable code, never a 5xx, and loses nothing."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

import httpx
import numpy as np
import pytest

from service.process import ServerProcess
from tests.conftest import ALICE, MAX_UPLOAD_BYTES
from tests.service.test_sessions_http import BOX, create_session, run_round
from tests.support.bombs import png_bomb
from tests.support.images import decode_png, encode, two_objects

IMAGE, _, _ = two_objects()
PNG = encode(IMAGE)


@dataclass
class Case:
    name: str
    send: Callable[[str, str], httpx.Response]  # (base url, a live session id of alice with one round)
    status: int
    code: str


def upload(data: bytes, name: str = "x.png", content_type: str = "image/png", **form: str):
    def send(url: str, sid: str) -> httpx.Response:
        return httpx.post(
            f"{url}/v1/sessions",
            files={"image": (name, data, content_type)},
            data=form,
            headers=ALICE,
            timeout=60,
        )

    return send


def round_json(body: object):
    def send(url: str, sid: str) -> httpx.Response:
        return httpx.post(f"{url}/v1/sessions/{sid}/rounds", json=body, headers=ALICE, timeout=60)

    return send


def round_raw(content: bytes):
    def send(url: str, sid: str) -> httpx.Response:
        return httpx.post(
            f"{url}/v1/sessions/{sid}/rounds",
            content=content,
            headers={**ALICE, "Content-Type": "application/json"},
            timeout=60,
        )

    return send


def click(x: float, y: float, label: str = "fg") -> dict:
    return {"type": "click", "x": x, "y": y, "label": label}


def chunked_upload(total: int):
    def send(url: str, sid: str) -> httpx.Response:
        boundary = "matteserveboundary"
        head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="big.png"\r\n'
            "Content-Type: image/png\r\n\r\n"
        ).encode()

        def body():
            yield head
            for _ in range(total // 65536):
                yield b"\x00" * 65536
            yield f"\r\n--{boundary}--\r\n".encode()

        return httpx.post(
            f"{url}/v1/sessions",
            content=body(),
            timeout=60,
            headers={**ALICE, "Content-Type": f"multipart/form-data; boundary={boundary}"},
        )

    return send


CASES = [
    Case(
        "text file as image",
        upload(b"hello, not an image", "a.txt", "text/plain"),
        415,
        "unsupported_media_type",
    ),
    Case("GIF image", upload(encode(IMAGE, "GIF"), "a.gif", "image/gif"), 415, "unsupported_media_type"),
    Case("truncated PNG", upload(PNG[: len(PNG) // 3]), 400, "corrupt_image"),
    Case("empty upload", upload(b""), 400, "empty_image"),
    Case("decompression bomb (3.6 gigapixels)", upload(png_bomb(60000, 60000)), 413, "image_too_large"),
    Case(
        "upload over the byte limit",
        upload(b"\x89PNG" + b"\x00" * (MAX_UPLOAD_BYTES + 400_000)),
        413,
        "payload_too_large",
    ),
    Case(
        "chunked upload over the byte limit",
        chunked_upload(MAX_UPLOAD_BYTES + 1_000_000),
        413,
        "payload_too_large",
    ),
    Case(
        "missing image field",
        lambda url, sid: httpx.post(f"{url}/v1/sessions", data={"model": "auto"}, headers=ALICE),
        422,
        "invalid_request",
    ),
    Case("unknown model", upload(PNG, model="magic"), 422, "invalid_request"),
    Case(
        "round on unknown session",
        lambda url, sid: httpx.post(
            f"{url}/v1/sessions/AAAAAAAAAAAAAAAAAAAAAA/rounds", json={"prompts": [BOX]}, headers=ALICE
        ),
        404,
        "session_not_found",
    ),
    Case(
        "odd characters in the session id",
        lambda url, sid: httpx.get(f"{url}/v1/sessions/..%2A%7B%7D", headers=ALICE),
        404,
        "session_not_found",
    ),
    Case("malformed JSON body", round_raw(b'{"prompts": [{"type": "click", "x": 1,'), 400, "invalid_json"),
    Case("prompts is not a list", round_json({"prompts": {"type": "box"}}), 422, "invalid_request"),
    Case("unknown prompt type", round_json({"prompts": [{"type": "lasso", "x": 1}]}), 422, "invalid_request"),
    Case(
        "unknown field in a prompt",
        round_json({"prompts": [{**click(5, 5), "pressure": 3}]}),
        422,
        "invalid_request",
    ),
    Case("click outside the image", round_json({"prompts": [click(481, 20)]}), 400, "prompt_out_of_range"),
    Case("negative coordinate", round_json({"prompts": [click(-1, 20)]}), 400, "prompt_out_of_range"),
    Case(
        "NaN coordinate",
        round_raw(b'{"prompts": [{"type": "click", "x": NaN, "y": 3}]}'),
        400,
        "invalid_prompt",
    ),
    Case(
        "inverted box",
        round_json({"prompts": [{"type": "box", "x0": 300, "y0": 10, "x1": 100, "y1": 90}]}),
        400,
        "invalid_prompt",
    ),
    Case(
        "empty scribble",
        round_json({"prompts": [{"type": "scribble", "points": [], "label": "fg"}]}),
        400,
        "invalid_prompt",
    ),
    Case(
        "scribble radius zero",
        round_json({"prompts": [{"type": "scribble", "points": [[3, 3]], "radius": 0}]}),
        400,
        "invalid_prompt",
    ),
    Case("blank text", round_json({"prompts": [{"type": "text", "text": "   "}]}), 400, "invalid_prompt"),
    Case(
        "text prompt to the classical engine",
        round_json({"prompts": [{"type": "text", "text": "the red disc"}], "model": "classical"}),
        400,
        "unsupported_prompt",
    ),
    Case("too many prompts", round_json({"prompts": [click(10, 10)] * 65}), 400, "too_many_prompts"),
    Case(
        "alpha of a round that does not exist",
        lambda url, sid: httpx.get(f"{url}/v1/sessions/{sid}/rounds/7/alpha.png", headers=ALICE),
        404,
        "round_not_found",
    ),
    Case(
        "non-numeric round",
        lambda url, sid: httpx.get(f"{url}/v1/sessions/{sid}/rounds/x/alpha.png", headers=ALICE),
        422,
        "invalid_request",
    ),
    Case(
        "one-shot prompts not JSON",
        lambda url, sid: httpx.post(
            f"{url}/v1/matte",
            files={"image": ("a.png", PNG, "image/png")},
            data={"prompts": "[{oops"},
            headers=ALICE,
        ),
        400,
        "invalid_json",
    ),
    Case("unknown route", lambda url, sid: httpx.get(f"{url}/v1/nothing", headers=ALICE), 404, "not_found"),
    Case(
        "wrong method",
        lambda url, sid: httpx.put(f"{url}/v1/sessions/{sid}", headers=ALICE),
        405,
        "method_not_allowed",
    ),
]


@pytest.fixture(scope="module")
def live_session(api_server: ServerProcess) -> str:
    sid = create_session(api_server, IMAGE, ALICE)["session_id"]
    assert run_round(api_server, sid, [BOX], ALICE).status_code == 200
    return sid


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_bad_input_is_refused_clearly(case: Case, api_server: ServerProcess, live_session: str) -> None:
    response = case.send(api_server.url, live_session)
    assert response.status_code == case.status, response.text
    body = response.json()
    assert body["error"]["code"] == case.code, body
    assert len(body["error"]["message"]) > 10


def test_background_click_alone_in_round_one_asks_for_a_foreground_mark(api_server: ServerProcess) -> None:
    sid = create_session(api_server, IMAGE, ALICE, model="classical")["session_id"]
    response = run_round(api_server, sid, [click(20, 20, "bg")], ALICE)
    assert response.status_code == 400 and response.json()["error"]["code"] == "prompt_required"


def test_server_is_healthy_and_nothing_was_lost_after_the_bad_inputs(
    api_server: ServerProcess, live_session: str
) -> None:
    # Runs after the table (file order): the session still has exactly its one round.
    assert httpx.get(f"{api_server.url}/healthz").status_code == 200
    info = httpx.get(f"{api_server.url}/v1/sessions/{live_session}", headers=ALICE).json()
    assert [r["round"] for r in info["rounds"]] == [1]
    response = run_round(api_server, live_session, [click(340, 185, "bg")], ALICE)
    assert response.status_code == 200 and response.json()["round"] == 2
    metrics = httpx.get(f"{api_server.url}/metrics").text
    assert 'matteserve_errors_total{code="prompt_out_of_range"}' in metrics
    five_hundreds = [
        line
        for line in metrics.splitlines()
        if line.startswith("matteserve_http_request_duration_seconds_count") and 'status="5' in line
    ]
    assert five_hundreds == []


def test_image_formats_and_modes_are_accepted(api_server: ServerProcess) -> None:
    gray = IMAGE.mean(axis=2).astype(np.uint8)
    rgba = np.dstack([IMAGE, np.full(IMAGE.shape[:2], 255, np.uint8)])
    sixteen = gray.astype(np.uint16) * 257
    for data, name in [
        (encode(IMAGE, "JPEG", quality=90), "a.jpg"),
        (encode(IMAGE, "WEBP", quality=90), "a.webp"),
        (encode(gray), "gray.png"),
        (encode(rgba), "rgba.png"),
        (encode(sixteen), "sixteen.png"),
    ]:
        response = httpx.post(
            f"{api_server.url}/v1/sessions",
            files={"image": (name, data, "image/png")},
            headers=ALICE,
            timeout=60,
        )
        assert response.status_code == 201, (name, response.text)
        assert (response.json()["width"], response.json()["height"]) == (480, 360)


DEGENERATE = [
    ("1x1", np.full((1, 1, 3), 128, np.uint8), [{"type": "click", "x": 0, "y": 0, "label": "fg"}]),
    ("2x2", np.full((2, 2, 3), 90, np.uint8), [{"type": "box", "x0": 0, "y0": 0, "x1": 2, "y1": 2}]),
    (
        "1x2000",
        np.random.default_rng(1).integers(0, 255, (1, 2000, 3), dtype=np.uint8),
        [{"type": "box", "x0": 10, "y0": 0, "x1": 900, "y1": 1}],
    ),
    (
        "3000x1",
        np.random.default_rng(2).integers(0, 255, (3000, 1, 3), dtype=np.uint8),
        [{"type": "click", "x": 0, "y": 100, "label": "fg"}],
    ),
    (
        "whole-frame box, uniform",
        np.full((200, 300, 3), 128, np.uint8),
        [{"type": "box", "x0": 0, "y0": 0, "x1": 300, "y1": 200}],
    ),
    (
        "one click on texture",
        np.random.default_rng(3).integers(0, 255, (200, 300, 3), dtype=np.uint8),
        [{"type": "click", "x": 150, "y": 100, "label": "fg"}],
    ),
    (
        "tiny box",
        np.random.default_rng(4).integers(0, 60, (480, 640, 3), dtype=np.uint8),
        [{"type": "box", "x0": 100, "y0": 100, "x1": 106, "y1": 112}],
    ),
]


@pytest.mark.parametrize("model", ["classical", "dfimat"])
@pytest.mark.parametrize(("name", "image", "prompts"), DEGENERATE, ids=[d[0] for d in DEGENERATE])
def test_degenerate_images_and_prompts_still_get_a_matte_and_a_cutout(
    api_server: ServerProcess, model: str, name: str, image: np.ndarray, prompts: list[dict]
) -> None:
    """Issue 11: what made the classical engine (and the 1x1 cut-out) answer 500."""
    response = httpx.post(
        f"{api_server.url}/v1/matte",
        files={"image": ("a.png", encode(image), "image/png")},
        data={"model": model, "prompts": json.dumps(prompts), "output": "cutout"},
        headers=ALICE,
        timeout=120,
    )
    assert response.status_code == 200, (name, model, response.text)
    rgba = decode_png(response.content)
    assert rgba.shape == (*image.shape[:2], 4)


def test_a_one_bit_png_is_matted(api_server: ServerProcess) -> None:
    import io

    from PIL import Image

    bits = Image.fromarray((IMAGE.mean(axis=2) > 100).astype(np.uint8) * 255).convert("1")
    buffer = io.BytesIO()
    bits.save(buffer, format="PNG")
    response = httpx.post(
        f"{api_server.url}/v1/matte",
        files={"image": ("bits.png", buffer.getvalue(), "image/png")},
        data={
            "model": "classical",
            "prompts": json.dumps([{"type": "box", "x0": 40, "y0": 30, "x1": 300, "y1": 300}]),
        },
        headers=ALICE,
        timeout=120,
    )
    assert response.status_code == 200, response.text
