"""The Python client (sync and async) against a real server process and a real Redis."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import numpy as np
import pytest
from typer.testing import CliRunner

from schemas import (
    BoxPrompt,
    ClickPrompt,
    InstancesResponse,
    ModelsResponse,
    ResultMessage,
    RoundResult,
    SessionCreated,
    SessionInfo,
    TextPrompt,
    UndoResult,
)
from service.cli import app
from service.client import AsyncMatteClient, MatteClient, MatteServerError
from service.process import ServerProcess, start_server
from service.redis_runtime import free_port
from tests.support.images import decode_png, encode, iou, two_objects

KEY = "alice-key"
BOX = BoxPrompt(x0=60, y0=70, x1=400, y1=290)


def same_matte(a: np.ndarray, b: np.ndarray) -> bool:
    """Two mattes of the same request computed separately are identical (the engine is
    deterministic: GrabCut's k-means is seeded)."""
    return a.shape == b.shape and np.array_equal(a, b)


def bg_click_on_distractor(distractor: np.ndarray) -> dict:
    """A background click (as a wire dict) in the middle of the blue distractor square."""
    ys, xs = np.nonzero(distractor)
    return {"type": "click", "x": float(xs.mean()), "y": float(ys.mean()), "label": "bg"}


def test_session_lifecycle_over_http(api_server: ServerProcess, tmp_path: Path) -> None:
    image, target, distractor = two_objects()
    photo = tmp_path / "photo.png"
    photo.write_bytes(encode(image))
    with MatteClient(api_server.url, api_key=KEY) as client:
        models = client.models()
        assert isinstance(models, ModelsResponse)
        assert "classical" in {m.name for m in models.models}

        # the three image inputs: array, encoded bytes, path
        for source in (image, encode(image, "JPEG", quality=95), photo):
            created = client.create_session(source, model="classical")
            assert isinstance(created, SessionCreated) and (created.width, created.height) == (480, 360)
        sid = created.session_id

        first = client.run_round(sid, [BOX], request_id="r1")
        assert isinstance(first, RoundResult) and first.round == 1 and first.model == "classical"
        assert client.run_round(sid, [BOX], request_id="r1").round == 1  # replayed, not applied twice
        second = client.run_round(sid, [bg_click_on_distractor(distractor)])
        assert second.round == 2 and "total" in second.timings_ms

        info = client.session(sid)
        assert isinstance(info, SessionInfo)
        assert [r.round for r in info.rounds] == [1, 2]
        assert info.rounds[0].prompts == [BOX] and isinstance(info.rounds[1].prompts[0], ClickPrompt)

        alpha = client.alpha(sid, 2)
        assert isinstance(alpha, np.ndarray) and alpha.shape == (360, 480) and alpha.dtype == np.uint8
        assert iou(alpha / 255.0, target) > 0.9
        png = client.alpha(sid, 2, as_array=False)
        assert isinstance(png, bytes) and png.startswith(b"\x89PNG")
        assert np.array_equal(decode_png(png), alpha)
        cutout = client.cutout(sid, 2)
        assert cutout.shape == (360, 480, 4) and cutout.dtype == np.uint8
        assert np.array_equal(cutout[..., 3], alpha)
        assert client.cutout(sid, 1, as_array=False).startswith(b"\x89PNG")

        undone = client.undo(sid)
        assert isinstance(undone, UndoResult) and undone.round == 1
        assert [r.round for r in client.session(sid).rounds] == [1]

        client.delete(sid)
        with pytest.raises(MatteServerError) as gone:
            client.session(sid)
        assert (gone.value.code, gone.value.status) == ("session_not_found", 404)


def test_server_errors_become_exceptions_with_the_servers_code(api_server: ServerProcess) -> None:
    image, _, _ = two_objects()
    with MatteClient(api_server.url, api_key=KEY) as client:
        sid = client.create_session(image, model="classical").session_id
        cases = [
            (lambda: client.run_round(sid, [TextPrompt(text="the red disc")]), "unsupported_prompt", 400),
            (lambda: client.run_round(sid, [ClickPrompt(x=9999, y=1)]), "prompt_out_of_range", 400),
            (lambda: client.undo(sid), "nothing_to_undo", None),
            (lambda: client.alpha(sid, 7), None, 404),
            (lambda: client.session("no-such-session"), "session_not_found", 404),
            (lambda: client.create_session(b"not an image at all"), "unsupported_media_type", 415),
        ]
        for call, code, status in cases:
            with pytest.raises(MatteServerError) as caught:
                call()
            error = caught.value
            assert error.message and error.code == (code or error.code)
            assert error.status == (status or error.status) and error.status >= 400
        with pytest.raises(ValueError, match="wire schema"):
            client.run_round(sid, [{"type": "click", "x": 1}])  # refused before it is sent

    with MatteClient(api_server.url, api_key="wrong-key") as client, pytest.raises(MatteServerError) as bad:
        client.models()
    assert (bad.value.code, bad.value.status) == ("invalid_api_key", 401)
    with MatteClient(api_server.url) as client, pytest.raises(MatteServerError) as anonymous:
        client.models()
    assert anonymous.value.status == 401 and "API key" in anonymous.value.message
    nobody = f"http://127.0.0.1:{free_port()}"
    with MatteClient(nobody, timeout=5) as client, pytest.raises(MatteServerError) as unreachable:
        client.models()
    assert unreachable.value.code == "unreachable" and unreachable.value.status is None


def test_instances_answers_the_documented_response_or_the_servers_error(api_server: ServerProcess) -> None:
    image, _, _ = two_objects()
    direct = httpx.post(
        f"{api_server.url}/v1/instances",
        files={"image": ("photo.png", encode(image), "image/png")},
        headers={"Authorization": f"Bearer {KEY}"},
        timeout=120,
    )
    with MatteClient(api_server.url, api_key=KEY) as client:
        if direct.is_success:
            found = client.instances(image)
            assert isinstance(found, InstancesResponse) and (found.width, found.height) == (480, 360)
            every = client.instances(image, min_score=0.0)
            assert len(every.instances) >= len(found.instances)
            assert all(i.score >= 0.95 for i in client.instances(image, min_score=0.95).instances)
            with pytest.raises(MatteServerError) as out_of_range:
                client.instances(image, min_score=1.5)
            assert out_of_range.value.code == "invalid_request" and out_of_range.value.status == 422
        else:
            with pytest.raises(MatteServerError) as caught:
                client.instances(image)
            error = direct.json()["error"]
            assert (caught.value.code, caught.value.message, caught.value.status) == (
                error["code"],
                error["message"],
                direct.status_code,
            )


def test_one_shot_matte(api_server: ServerProcess) -> None:
    image, target, distractor = two_objects()
    prompts = [BOX, bg_click_on_distractor(distractor)]
    with MatteClient(api_server.url, api_key=KEY) as client:
        rgba = decode_png(client.matte(image, prompts, model="classical"))
        alpha = decode_png(client.matte(encode(image), prompts, output="alpha", model="classical"))
        with pytest.raises(MatteServerError) as caught:
            client.matte(image, [TextPrompt(text="a disc")], model="classical")
    assert rgba.shape == (360, 480, 4) and alpha.shape == (360, 480)
    assert iou(alpha / 255.0, target) > 0.9 and same_matte(rgba[..., 3], alpha)
    assert caught.value.code == "unsupported_prompt"


def test_streaming_rounds_over_the_websocket(api_server: ServerProcess) -> None:
    image, target, distractor = two_objects()
    with MatteClient(api_server.url, api_key=KEY) as client:
        sid = client.create_session(image, model="classical").session_id
        with client.stream(sid) as stream:
            assert (stream.ready.session_id, stream.ready.rounds) == (sid, 0)
            first, alpha1 = stream.round([BOX], request_id="first")
            assert isinstance(first, ResultMessage) and first.round == 1 and first.request_id == "first"
            assert alpha1.shape == (360, 480) and alpha1.dtype == np.uint8

            with pytest.raises(MatteServerError) as refused:
                stream.round([TextPrompt(text="the red disc")], model="classical")
            assert refused.value.code == "unsupported_prompt" and refused.value.message
            stream.ping()  # the socket stayed open after the error

            second, alpha2 = stream.round([bg_click_on_distractor(distractor)])
            assert second.round == 2 and iou(alpha2 / 255.0, target) > 0.9
            assert np.array_equal(alpha2, client.alpha(sid, 2))

            undone, current = stream.undo()
            assert undone.round == 1 and np.array_equal(current, alpha1)
            undone, current = stream.undo()
            assert undone.round == 0 and current is None
            with pytest.raises(MatteServerError) as nothing:
                stream.undo()
            assert nothing.value.code == "nothing_to_undo"

        with pytest.raises(MatteServerError) as unknown, client.stream("no-such-session"):
            pass
        assert (unknown.value.code, unknown.value.status) == ("session_not_found", 404)
    stranger = MatteClient(api_server.url, api_key="wrong-key")
    with stranger, pytest.raises(MatteServerError) as bad_key, stranger.stream(sid):
        pass
    assert (bad_key.value.code, bad_key.value.status) == ("invalid_api_key", 401)


def test_async_client(api_server: ServerProcess) -> None:
    image, target, distractor = two_objects()

    async def scenario() -> None:
        async with AsyncMatteClient(api_server.url, api_key=KEY) as client:
            assert "classical" in {m.name for m in (await client.models()).models}
            sid = (await client.create_session(image, model="classical")).session_id
            assert (await client.run_round(sid, [BOX])).round == 1
            async with client.stream(sid) as stream:
                assert stream.ready.rounds == 1
                second, alpha2 = await stream.round([bg_click_on_distractor(distractor)])
                assert second.round == 2 and iou(alpha2 / 255.0, target) > 0.9
                with pytest.raises(MatteServerError) as refused:
                    await stream.round([TextPrompt(text="the disc")])
                assert refused.value.code == "unsupported_prompt"
                await stream.ping()
                undone, alpha1 = await stream.undo()
                assert undone.round == 1 and np.array_equal(alpha1, await client.alpha(sid, 1))
            info = await client.session(sid)
            assert [r.round for r in info.rounds] == [1]
            cutout = await client.cutout(sid, 1)
            assert cutout.shape == (360, 480, 4)
            assert (await client.alpha(sid, 1, as_array=False)).startswith(b"\x89PNG")
            assert (await client.cutout(sid, 1, as_array=False)).startswith(b"\x89PNG")
            assert (await client.undo(sid)).round == 0
            one_shot = decode_png(await client.matte(image, [BOX], output="alpha"))
            assert one_shot.shape == (360, 480)
            try:
                found = await client.instances(image)
                assert isinstance(found, InstancesResponse)
            except MatteServerError as exc:
                assert exc.code and exc.message and exc.status
            await client.delete(sid)
            with pytest.raises(MatteServerError) as gone:
                await client.session(sid)
            assert gone.value.code == "session_not_found"
            with pytest.raises(MatteServerError) as unknown:
                async with client.stream(sid):
                    pass
            assert unknown.value.status == 404
        async with AsyncMatteClient(api_server.url, api_key="wrong-key") as stranger:
            with pytest.raises(MatteServerError) as bad:
                await stranger.create_session(image)
            assert (bad.value.code, bad.value.status) == ("invalid_api_key", 401)

    asyncio.run(scenario())


def test_cli_cutout_against_a_server(api_server: ServerProcess, tmp_path: Path) -> None:
    image, target, distractor = two_objects()
    source = tmp_path / "photo.png"
    source.write_bytes(encode(image))
    click = bg_click_on_distractor(distractor)
    marks = ["--box", "60,70,400,290", "--click", f"{click['x']},{click['y']},bg", "--model", "classical"]
    server = ["--server", api_server.url, "--api-key", KEY]

    out = tmp_path / "cutout.png"
    result = CliRunner().invoke(app, ["cutout", str(source), *marks, *server, "-o", str(out)])
    assert result.exit_code == 0, result.output
    rgba = decode_png(out.read_bytes())
    assert rgba.shape == (360, 480, 4) and iou(rgba[..., 3] / 255.0, target) > 0.9

    alpha_out = tmp_path / "alpha.png"
    result = CliRunner().invoke(
        app, ["cutout", str(source), *marks, *server, "--alpha", "-o", str(alpha_out)]
    )
    assert result.exit_code == 0, result.output
    assert same_matte(decode_png(alpha_out.read_bytes()), rgba[..., 3])

    refused = CliRunner().invoke(
        app, ["cutout", str(source), *marks, "--server", api_server.url, "--api-key", "nope", "-o", str(out)]
    )
    assert refused.exit_code != 0
    shown = isinstance(refused.exception, MatteServerError) and refused.exception.code == "invalid_api_key"
    assert shown or "invalid_api_key" in refused.output


class _AnswerLost(httpx.HTTPTransport):
    """A real HTTP transport whose first ``losses`` answers to round requests are lost on the way
    back: the request reaches the server (which applies it), then the connection fails."""

    def __init__(self, losses: int) -> None:
        super().__init__()
        self.losses = losses

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        if self.losses and request.url.path.endswith("/rounds"):
            self.losses -= 1
            response.read()
            response.close()
            raise httpx.RemoteProtocolError("Server disconnected without a response.", request=request)
        return response


def test_a_round_whose_answer_is_lost_is_applied_once(api_server: ServerProcess) -> None:
    """A lost answer was reported as ``unreachable`` ("could not reach the server") though the
    round was applied, and ``run_round`` sent no request_id to retry with (found by a probe of
    the client). Now every round carries one, a lost answer is retried once with it, and an
    answer lost twice is ``outcome_unknown`` with the id, which applies the round once."""
    image, _, _ = two_objects()
    with MatteClient(api_server.url, api_key=KEY, transport=_AnswerLost(losses=1)) as client:
        sid = client.create_session(image, model="classical").session_id
        assert client.run_round(sid, [BOX]).round == 1
        assert [r.round for r in client.session(sid).rounds] == [1]
    with MatteClient(api_server.url, api_key=KEY, transport=_AnswerLost(losses=2)) as client:
        with pytest.raises(MatteServerError) as lost:
            client.run_round(sid, [ClickPrompt(x=200, y=100, label="fg")])
        assert lost.value.code == "outcome_unknown" and lost.value.request_id
        assert lost.value.request_id in lost.value.message
        click = ClickPrompt(x=200, y=100, label="fg")
        again = client.run_round(sid, [click], request_id=lost.value.request_id)
        assert again.round == 2
        assert [r.request_id for r in client.session(sid).rounds].count(lost.value.request_id) == 1
    with MatteClient(f"http://127.0.0.1:{free_port()}", api_key=KEY) as nobody:
        with pytest.raises(MatteServerError) as unreachable:
            nobody.run_round(sid, [BOX])
        assert unreachable.value.code == "unreachable"


def test_a_stream_ends_at_a_timeout_and_its_round_is_retried_once(api_server: ServerProcess) -> None:
    """After a timed-out round, the next call on the same stream got the late answer of the
    earlier one (found by a probe of the client). A stream now ends at a timeout; the error
    carries the round's request_id, and a new stream retries it without applying it twice."""
    image, _, _ = two_objects()
    with MatteClient(api_server.url, api_key=KEY) as client:
        sid = client.create_session(image, model="classical").session_id
        with client.stream(sid) as stream:
            stream._timeout = 1e-4  # no round is answered within 0.1 ms
            with pytest.raises(MatteServerError) as late:
                stream.round([BOX])
            assert late.value.code == "timeout" and late.value.request_id
            with pytest.raises(MatteServerError) as ended:
                stream.ping()
            assert ended.value.code == "stream_closed"
        with client.stream(sid) as stream:
            result, _ = stream.round([BOX], request_id=late.value.request_id)
        assert result.round == 1 and [r.round for r in client.session(sid).rounds] == [1]


def test_retry_after_is_surfaced_and_keys_are_checked(redis_url: str) -> None:
    """429/503 answers' Retry-After reached nobody (found by a probe of the client); a key read
    from a file with its newline was sent as an illegal header and echoed in the error."""
    from tests.conftest import server_env

    server = start_server(server_env(redis_url, MATTESERVE_RATE_LIMIT_PER_MINUTE="3"))
    try:
        with MatteClient(server.url, api_key=KEY + "\n") as client:  # the newline is dropped
            with pytest.raises(MatteServerError) as limited:
                for _ in range(5):
                    client.models()
            assert (limited.value.code, limited.value.status) == ("rate_limited", 429)
            assert limited.value.retry_after_s is not None and limited.value.retry_after_s >= 1
        with pytest.raises(ValueError) as bad_key:
            MatteClient(server.url, api_key="s3cret-ké")
        assert "s3cret" not in str(bad_key.value)
    finally:
        server.stop()


def test_a_stream_whose_server_goes_away_raises_the_clients_error(redis_url: str) -> None:
    """Sending on a socket the server closed raised websockets' own exceptions (found by a probe
    of the client); so did opening a stream on something that is not a WebSocket server."""
    from tests.conftest import server_env

    server = start_server(server_env(redis_url))
    image, _, _ = two_objects()
    try:
        with MatteClient(server.url, api_key=KEY) as client:
            sid = client.create_session(image, model="classical").session_id
            with client.stream(sid) as stream:
                server.stop()
                with pytest.raises(MatteServerError) as gone:
                    stream.round([BOX])
                assert gone.value.code == "connection_closed"
                with pytest.raises(MatteServerError) as ended:
                    stream.undo()
                assert ended.value.code == "stream_closed"
        with MatteClient(redis_url.replace("redis://", "http://").rsplit("/", 1)[0], api_key=KEY) as wrong:
            with pytest.raises(MatteServerError) as not_http, wrong.stream(sid):
                pass
            assert not_http.value.code == "unreachable"
    finally:
        server.stop()
