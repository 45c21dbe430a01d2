"""Sessions over HTTP against a real server process and a real Redis."""

from __future__ import annotations

import concurrent.futures
import json

import httpx
import numpy as np
import pytest
import redis

from service.process import ServerProcess
from service.store import keys
from tests.conftest import ALICE, BOB
from tests.support.images import decode_png, encode, iou, two_objects


def create_session(server: ServerProcess, image: np.ndarray, headers: dict[str, str], **form: str) -> dict:
    response = httpx.post(
        f"{server.url}/v1/sessions",
        files={"image": ("photo.png", encode(image), "image/png")},
        data=form,
        headers=headers,
        timeout=60,
    )
    assert response.status_code == 201, response.text
    return response.json()


def run_round(
    server: ServerProcess, sid: str, prompts: list[dict], headers: dict[str, str], **extra
) -> httpx.Response:
    return httpx.post(
        f"{server.url}/v1/sessions/{sid}/rounds",
        json={"prompts": prompts, **extra},
        headers=headers,
        timeout=120,
    )


def fetch_alpha(server: ServerProcess, sid: str, n: int, headers: dict[str, str]) -> np.ndarray:
    response = httpx.get(f"{server.url}/v1/sessions/{sid}/rounds/{n}/alpha.png", headers=headers, timeout=30)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    return decode_png(response.content).astype(np.float32) / 255.0


BOX = {"type": "box", "x0": 60, "y0": 70, "x1": 400, "y1": 290}


def test_box_gives_a_soft_matte_of_the_known_object(api_server: ServerProcess) -> None:
    image, target, _ = two_objects()
    session = create_session(api_server, image, ALICE, model="classical")
    assert (session["width"], session["height"]) == (480, 360)
    tight_box = {"type": "box", "x0": 40, "y0": 80, "x1": 300, "y1": 280}
    response = run_round(api_server, session["session_id"], [tight_box], ALICE)
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["round"] == 1 and result["model"] == "classical"
    assert {"matting", "total"} <= result["timings_ms"].keys()
    alpha = fetch_alpha(api_server, session["session_id"], 1, ALICE)
    assert alpha.shape == target.shape
    assert iou(alpha, target) > 0.9
    edge = (target > 0.05) & (target < 0.95)
    soft = (alpha > 0.05) & (alpha < 0.95)
    assert (soft & edge).sum() > 0.3 * edge.sum(), "the edge of the object should get fractional alpha"
    assert not soft[target > 0.999].mean() > 0.02, "the interior should be opaque"


def test_background_click_in_round_two_removes_the_wrongly_included_object(api_server: ServerProcess) -> None:
    image, target, distractor = two_objects()
    sid = create_session(api_server, image, ALICE, model="classical")["session_id"]
    assert run_round(api_server, sid, [BOX], ALICE).status_code == 200
    first = fetch_alpha(api_server, sid, 1, ALICE)
    assert (first[distractor] > 0.5).mean() > 0.8, "round 1 should include the blue square (the setup)"
    ys, xs = np.nonzero(distractor)
    click = {"type": "click", "x": float(xs.mean()), "y": float(ys.mean()), "label": "bg"}
    response = run_round(api_server, sid, [click], ALICE)
    assert response.status_code == 200, response.text
    assert response.json()["round"] == 2
    second = fetch_alpha(api_server, sid, 2, ALICE)
    assert (second[distractor] > 0.5).mean() < 0.02
    assert iou(second, target) > 0.9


def test_cutout_is_rgba_with_the_matte_as_alpha(api_server: ServerProcess) -> None:
    image, target, _ = two_objects()
    sid = create_session(api_server, image, ALICE)["session_id"]
    assert (
        run_round(
            api_server, sid, [BOX, {"type": "click", "x": 340, "y": 185, "label": "bg"}], ALICE
        ).status_code
        == 200
    )
    alpha = fetch_alpha(api_server, sid, 1, ALICE)
    response = httpx.get(f"{api_server.url}/v1/sessions/{sid}/rounds/1/cutout.png", headers=ALICE, timeout=60)
    assert response.status_code == 200
    rgba = decode_png(response.content)
    assert rgba.shape == (360, 480, 4)
    assert np.abs(rgba[..., 3].astype(int) - np.round(alpha * 255).astype(int)).max() <= 1
    inside = target > 0.99
    assert np.abs(rgba[inside][:, :3].astype(int) - image[inside].astype(int)).max() == 0
    again = httpx.get(f"{api_server.url}/v1/sessions/{sid}/rounds/1/cutout.png", headers=ALICE, timeout=60)
    assert again.content == response.content


def test_undo_drops_the_last_round_and_the_next_round_takes_its_number(api_server: ServerProcess) -> None:
    image, _, distractor = two_objects()
    sid = create_session(api_server, image, ALICE)["session_id"]
    run_round(api_server, sid, [BOX], ALICE)
    run_round(api_server, sid, [{"type": "click", "x": 340, "y": 185, "label": "bg"}], ALICE)
    response = httpx.post(f"{api_server.url}/v1/sessions/{sid}/undo", headers=ALICE)
    assert response.status_code == 200
    assert response.json() == {"session_id": sid, "round": 1, "dropped": 2}
    info = httpx.get(f"{api_server.url}/v1/sessions/{sid}", headers=ALICE).json()
    assert [r["round"] for r in info["rounds"]] == [1]
    assert (
        httpx.get(f"{api_server.url}/v1/sessions/{sid}/rounds/2/alpha.png", headers=ALICE).status_code == 404
    )
    # Round 1's matte is back in force: the next round refines it again.
    response = run_round(api_server, sid, [{"type": "click", "x": 340, "y": 185, "label": "bg"}], ALICE)
    assert response.json()["round"] == 2
    assert (fetch_alpha(api_server, sid, 2, ALICE)[distractor] > 0.5).mean() < 0.02
    httpx.post(f"{api_server.url}/v1/sessions/{sid}/undo", headers=ALICE)
    httpx.post(f"{api_server.url}/v1/sessions/{sid}/undo", headers=ALICE)
    response = httpx.post(f"{api_server.url}/v1/sessions/{sid}/undo", headers=ALICE)
    assert response.status_code == 409 and response.json()["error"]["code"] == "nothing_to_undo"


def test_session_lists_rounds_with_their_prompts(api_server: ServerProcess) -> None:
    image, _, _ = two_objects()
    sid = create_session(api_server, image, ALICE)["session_id"]
    scribble = {"type": "scribble", "points": [[150, 150], [180, 170]], "label": "fg", "radius": 3}
    run_round(api_server, sid, [BOX], ALICE)
    run_round(api_server, sid, [scribble], ALICE)
    info = httpx.get(f"{api_server.url}/v1/sessions/{sid}", headers=ALICE).json()
    assert info["width"] == 480 and len(info["rounds"]) == 2
    assert info["rounds"][0]["prompts"] == [{**BOX, "x0": 60.0, "y0": 70.0, "x1": 400.0, "y1": 290.0}]
    assert info["rounds"][1]["prompts"][0]["points"] == [[150.0, 150.0], [180.0, 170.0]]
    assert info["rounds"][1]["alpha_url"].endswith("/rounds/2/alpha.png")


def test_delete_leaves_no_keys(api_server: ServerProcess, redis_client: redis.Redis) -> None:
    image, _, _ = two_objects()
    sid = create_session(api_server, image, ALICE)["session_id"]
    run_round(api_server, sid, [BOX], ALICE, request_id="r-1")
    httpx.get(f"{api_server.url}/v1/sessions/{sid}/rounds/1/cutout.png", headers=ALICE, timeout=60)
    present = {k.decode() for k in redis_client.scan_iter(match=keys.session_pattern(sid))}
    assert {
        keys.meta(sid),
        keys.image(sid),
        keys.alpha(sid, 1),
        keys.cutout(sid, 1),
        keys.requests(sid),
    } <= present
    assert all(redis_client.pttl(k) > 0 for k in present), "every key carries the idle TTL"
    assert httpx.delete(f"{api_server.url}/v1/sessions/{sid}", headers=ALICE).status_code == 204
    assert list(redis_client.scan_iter(match=keys.session_pattern(sid))) == []
    assert redis_client.zscore(keys.SESSIONS_INDEX, sid) is None
    assert httpx.get(f"{api_server.url}/v1/sessions/{sid}", headers=ALICE).status_code == 404


def test_another_users_session_is_404_everywhere(api_server: ServerProcess) -> None:
    image, _, _ = two_objects()
    sid = create_session(api_server, image, ALICE)["session_id"]
    run_round(api_server, sid, [BOX], ALICE)
    base = f"{api_server.url}/v1/sessions/{sid}"
    answers = [
        httpx.get(base, headers=BOB),
        httpx.post(f"{base}/rounds", json={"prompts": [BOX]}, headers=BOB),
        httpx.get(f"{base}/rounds/1/alpha.png", headers=BOB),
        httpx.get(f"{base}/rounds/1/cutout.png", headers=BOB),
        httpx.post(f"{base}/undo", headers=BOB),
        httpx.delete(base, headers=BOB),
    ]
    for response in answers:
        assert response.status_code == 404, response.text
        assert response.json()["error"]["code"] == "session_not_found"
    # Alice's session is untouched by Bob's attempts.
    assert len(httpx.get(base, headers=ALICE).json()["rounds"]) == 1


def test_repeated_request_id_is_applied_once(api_server: ServerProcess) -> None:
    image, _, _ = two_objects()
    sid = create_session(api_server, image, ALICE)["session_id"]
    first = run_round(api_server, sid, [BOX], ALICE, request_id="retry-me").json()
    second = run_round(api_server, sid, [BOX], ALICE, request_id="retry-me").json()
    assert first["round"] == second["round"] == 1
    assert len(httpx.get(f"{api_server.url}/v1/sessions/{sid}", headers=ALICE).json()["rounds"]) == 1


def test_concurrent_rounds_through_two_processes_are_serialised(
    api_server: ServerProcess, second_server: ServerProcess
) -> None:
    image, _, _ = two_objects()
    sid = create_session(api_server, image, ALICE)["session_id"]
    count = 8
    servers = [api_server, second_server]

    def send(k: int) -> int:
        click = {"type": "click", "x": 100 + k, "y": 180, "label": "fg"}
        response = run_round(servers[k % 2], sid, [BOX, click], ALICE)
        assert response.status_code == 200, response.text
        return response.json()["round"]

    with concurrent.futures.ThreadPoolExecutor(max_workers=count) as pool:
        numbers = list(pool.map(send, range(count)))
    assert sorted(numbers) == list(range(1, count + 1))
    info = httpx.get(f"{second_server.url}/v1/sessions/{sid}", headers=ALICE).json()
    assert [r["round"] for r in info["rounds"]] == list(range(1, count + 1))
    applied = sorted(int(r["prompts"][1]["x"]) - 100 for r in info["rounds"])
    assert applied == list(range(count)), "each round applied exactly once"
    for n, r in zip(numbers, range(count), strict=True):
        assert info["rounds"][n - 1]["prompts"][1]["x"] == 100 + r


def test_one_shot_matte_returns_png(api_server: ServerProcess) -> None:
    image, target, _ = two_objects()
    prompts = json.dumps([BOX, {"type": "click", "x": 340, "y": 185, "label": "bg"}])
    response = httpx.post(
        f"{api_server.url}/v1/matte",
        files={"image": ("p.png", encode(image), "image/png")},
        data={"prompts": prompts, "output": "alpha", "model": "classical"},
        headers=ALICE,
        timeout=60,
    )
    assert response.status_code == 200, response.text
    assert response.headers["x-matteserve-model"] == "classical"
    alpha = decode_png(response.content)
    assert alpha.shape == target.shape and iou(alpha / 255.0, target) > 0.9
    cut = httpx.post(
        f"{api_server.url}/v1/matte",
        files={"image": ("p.png", encode(image), "image/png")},
        data={"prompts": prompts},
        headers=ALICE,
        timeout=60,
    )
    assert cut.status_code == 200, cut.text
    assert decode_png(cut.content).shape == (360, 480, 4)
    # model=auto (the default) follows the committed routing table: box + click is "marks".
    routes = httpx.get(f"{api_server.url}/v1/models", headers=ALICE).json()["auto"]
    assert cut.headers["x-matteserve-model"] == routes["marks"]


def test_models_metrics_and_health(api_server: ServerProcess) -> None:
    models = httpx.get(f"{api_server.url}/v1/models", headers=ALICE).json()
    by_name = {m["name"]: m for m in models["models"]}
    assert by_name["classical"]["ready"] and by_name["classical"]["backend"] == "none"
    assert models["auto"]["box"] in by_name
    assert httpx.get(f"{api_server.url}/healthz").json()["status"] == "ok"
    ready = httpx.get(f"{api_server.url}/readyz")
    assert ready.status_code == 200 and ready.json()["checks"]["redis"] == "ok"
    text = httpx.get(f"{api_server.url}/metrics").text
    for family in (
        "matteserve_http_request_duration_seconds_bucket",
        "matteserve_round_duration_seconds_bucket",
        "matteserve_active_sessions",
        "matteserve_errors_total",
    ):
        assert family in text
    assert 'route="/v1/sessions/{session_id}/rounds"' in text
    assert 'stage="matting"' in text


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic abc"}])
def test_requests_without_a_valid_key_are_401(api_server: ServerProcess, headers: dict[str, str]) -> None:
    response = httpx.get(f"{api_server.url}/v1/models", headers=headers)
    assert response.status_code == 401
    assert response.json()["error"]["code"] in {"unauthorized", "invalid_api_key", "invalid_authorization"}


def test_a_long_smooth_stroke_is_stored_as_a_short_polyline(api_server: ServerProcess) -> None:
    """Issue 11.8: a 4096-sample pointer stroke is kept as a simplified polyline (within
    0.5 px), so the session's history stays small; the round still honours the stroke."""
    image, _, _ = two_objects()
    sid = create_session(api_server, image, ALICE, model="classical")["session_id"]
    t = np.linspace(0.0, 2 * np.pi, 4096)
    stroke = np.stack([150 + 60 * np.cos(t), 180 + 50 * np.sin(t)], axis=1).round(2).tolist()
    scribble = {"type": "scribble", "points": stroke, "label": "fg", "radius": 6}
    response = run_round(api_server, sid, [BOX, scribble], ALICE)
    assert response.status_code == 200, response.text
    stored = httpx.get(f"{api_server.url}/v1/sessions/{sid}", headers=ALICE).json()["rounds"][0]["prompts"][1]
    assert 8 <= len(stored["points"]) <= 128
    drawn = np.asarray(stroke)
    kept = np.asarray(stored["points"])
    start, end = kept[:-1][None], kept[1:][None]  # (1, S, 2) segments of the stored polyline
    along = ((drawn[:, None] - start) * (end - start)).sum(-1) / np.maximum(
        ((end - start) ** 2).sum(-1), 1e-9
    )
    closest = start + np.clip(along, 0, 1)[..., None] * (end - start)
    distance = np.sqrt(((drawn[:, None] - closest) ** 2).sum(-1)).min(1)
    assert distance.max() < 0.6  # every drawn sample within the 0.5 px tolerance (+ rounding)
    alpha = fetch_alpha(api_server, sid, 1, ALICE)
    ys, xs = np.round(drawn[:, 1]).astype(int), np.round(drawn[:, 0]).astype(int)
    assert alpha[ys.clip(0, 359), xs.clip(0, 479)].min() >= 0.99
