"""Settings rules, the Redis fallback of ``serve``, and the CLI's in-process cut-out."""

from __future__ import annotations

import os
import subprocess
import sys

import httpx
import numpy as np
import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from service.cli import app, parse_cli_prompts
from service.config import InvalidSettings, Settings, load_settings
from service.process import REPO
from service.redis_runtime import answers, free_port, resolve_redis
from tests.support.images import decode_png, encode, iou, two_objects
from tests.support.waiting import wait_until


def test_anonymous_access_follows_keys_and_listen_address() -> None:
    assert Settings(host="127.0.0.1").anonymous_allowed
    assert not Settings(host="0.0.0.0").anonymous_allowed
    assert not Settings(host="127.0.0.1", api_keys="k:alice").anonymous_allowed
    assert Settings(host="0.0.0.0", allow_anonymous=True).anonymous_allowed
    assert not Settings(host="localhost", allow_anonymous=False).anonymous_allowed
    assert Settings(api_keys="k1:alice, k2:bob").key_to_user == {"k1": "alice", "k2": "bob"}
    with pytest.raises(ValidationError):
        Settings(api_keys="no-user-here")


def test_settings_read_the_documented_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MATTESERVE_BACKEND", "triton")
    monkeypatch.setenv("MATTESERVE_TRITON_URL", "triton:8001")
    monkeypatch.setenv("MATTESERVE_SESSION_TTL_S", "60")
    monkeypatch.setenv("MATTESERVE_MAX_PIXELS", "1000000")
    settings = Settings()
    assert (settings.backend, settings.triton_url, settings.session_ttl_s, settings.max_pixels) == (
        "triton",
        "triton:8001",
        60,
        1_000_000,
    )


def test_a_wrong_setting_names_its_variable_and_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MATTESERVE_LOG_LEVEL", "loud")
    monkeypatch.setenv("MATTESERVE_MAX_PIXELS", "-3")
    with pytest.raises(InvalidSettings) as wrong:
        load_settings()
    lines = str(wrong.value).splitlines()
    assert len(lines) == 2
    assert any(line.startswith("MATTESERVE_LOG_LEVEL: ") and "'loud'" in line for line in lines)
    assert any(line.startswith("MATTESERVE_MAX_PIXELS: ") and "'-3'" in line for line in lines)
    monkeypatch.delenv("MATTESERVE_LOG_LEVEL")
    monkeypatch.setenv("MATTESERVE_MAX_PIXELS", "90000000")
    with pytest.raises(InvalidSettings, match="MATTESERVE_MAX_CONCURRENT_PIXELS must be at least"):
        load_settings()
    assert load_settings(max_pixels=1_000_000).max_pixels == 1_000_000


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("SESSION_TTL_S", "99999999999999999999"),  # Redis refused the expiry: keys without TTL
        ("SESSION_TTL_S", "1000000000000"),  # an expiry date past year 9999: 500 on create
        ("ROUND_LOCK_TIMEOUT_S", "inf"),  # every round 500
        ("ROUND_LOCK_TIMEOUT_S", "0.0001"),  # a lease of 0 ms: every round 503
        ("REDIS_TIMEOUT_S", "inf"),  # a paused Redis would hang requests
        ("TRITON_TIMEOUT_S", "nan"),
        ("PORT", "70000"),  # listened on 70000 mod 65536 without a word
        ("PORT", "-1"),
        ("HOST", "not..a..host"),  # five chained tracebacks from the socket layer
        ("REDIS_URL", "http://redis:6379"),
        ("REDIS_URL", "garbage"),
        ("MODEL_REPOSITORY", "/nonexistent/repo"),
        ("MODEL_REPOSITORY", "/etc/passwd"),
        ("API_KEYS", "k1:alice,k1:bob"),
    ],
)
def test_settings_no_request_could_work_with_are_refused_at_start_up(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    """Each of these started the server (found by a probe of the configuration) and then failed
    requests, or listened elsewhere; now the start-up refuses them, naming the variable."""
    monkeypatch.setenv(f"MATTESERVE_{variable}", value)
    with pytest.raises(InvalidSettings) as wrong:
        load_settings()
    assert str(wrong.value).startswith(f"MATTESERVE_{variable}: "), str(wrong.value)


def test_api_keys_ignore_spaces_around_their_separators() -> None:
    assert Settings(api_keys="k1 : alice ,k2:bob").key_to_user == {"k1": "alice", "k2": "bob"}


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        ("click=clasical", "unknown pipeline 'clasical'"),
        ("bogus=classical", "unknown situation 'bogus'"),
        ("click", "bad entry"),
        ("/nonexistent/routes.json", "cannot read a routing table"),
        ("{routes}", "cannot read a routing table"),
        ("[list]", "no situation -> pipeline table"),
        ("{names}", "unknown pipeline 'magic'"),
    ],
)
def test_auto_routes_that_name_nothing_known_are_refused(tmp_path, spec: str, problem: str) -> None:
    """A typo (``click=clasical``) silently sent every click to the fallback pipeline."""
    from service.pipelines.routing import load_routes

    files = {"{routes}": "not json", "[list]": "[1, 2]", "{names}": '{"routes": {"box": "magic"}}'}
    if spec in files:
        (tmp_path / "routes.json").write_text(files[spec])
        spec = str(tmp_path / "routes.json")
    with pytest.raises(ValueError, match="MATTESERVE_AUTO_ROUTES") as wrong:
        load_routes(spec, None)
    assert problem in str(wrong.value), str(wrong.value)
    assert load_routes("click = smat, box=semat", None)["click"] == "smat"


@pytest.mark.parametrize(
    ("setting", "said"),
    [
        ({"MATTESERVE_LOG_LEVEL": "loud"}, "MATTESERVE_LOG_LEVEL: "),
        ({"MATTESERVE_AUTO_ROUTES": "click=clasical"}, "MATTESERVE_AUTO_ROUTES: unknown pipeline 'clasical'"),
    ],
)
def test_a_command_with_a_wrong_setting_says_so_without_a_traceback(
    setting: dict[str, str], said: str
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MATTESERVE_")}
    env |= {**setting, "COLUMNS": "200"}
    done = subprocess.run(
        [sys.executable, "-m", "service", "serve", "--port", str(free_port())],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"Invalid configuration: {said}" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout


def test_serve_starts_its_own_redis_when_none_answers() -> None:
    nothing_here = f"redis://127.0.0.1:{free_port()}/0"
    url, process = resolve_redis(None, local_url=nothing_here)
    try:
        assert process is not None and url != nothing_here and answers(url)
    finally:
        process.stop()
    assert not answers(url)
    assert resolve_redis("redis://example:6379/0") == ("redis://example:6379/0", None)


def test_serve_command_runs_the_api() -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MATTESERVE_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "service", "serve", "--port", str(port)],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )

    def ready() -> bool:
        if process.poll() is not None:
            pytest.fail(process.stdout.read().decode())
        try:
            return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        assert wait_until(ready, 120)
        models = httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=10)
        assert models.status_code == 200, "anonymous access on loopback with no keys"
    finally:
        process.terminate()
        process.wait(timeout=20)


def test_cli_prompt_parsing() -> None:
    prompts = parse_cli_prompts(["1,2,30,40"], ["5,6", "7,8,bg"], ["1,1;4,4;bg"], ["the cat"], 3.0)
    assert [p.type for p in prompts] == ["box", "click", "click", "scribble", "text"]
    assert prompts[2].label == "bg" and prompts[3].label == "bg" and prompts[3].points == [(1, 1), (4, 4)]


def test_cutout_command_in_process(tmp_path) -> None:
    image, target, _ = two_objects()
    source = tmp_path / "photo.png"
    source.write_bytes(encode(image))
    out = tmp_path / "cut.png"
    result = CliRunner().invoke(
        app,
        [
            "cutout",
            str(source),
            "--box",
            "60,70,400,290",
            "--click",
            "340,185,bg",
            "--model",
            "classical",
            "-o",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    rgba = decode_png(out.read_bytes())
    assert rgba.shape == (360, 480, 4) and iou(rgba[..., 3] / 255.0, target) > 0.9
    bad = CliRunner().invoke(app, ["cutout", str(source), "--click", "9999,1", "-o", str(out)])
    assert bad.exit_code == 2 and "prompt_out_of_range" in bad.output
    # An output folder that does not exist is refused before the matte is computed, not after.
    nowhere = CliRunner().invoke(
        app,
        ["cutout", str(source), "--box", "60,70,400,290", "-o", str(tmp_path / "no" / "x.png")],
        env={"COLUMNS": "200"},
    )
    assert nowhere.exit_code == 2 and "no such folder" in nowhere.output
    assert not isinstance(nowhere.exception, FileNotFoundError)
    assert np.asarray(rgba).dtype == np.uint8
