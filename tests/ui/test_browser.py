"""The web UI in headless Chromium against a live server process (real Redis, real engine).

Every wait is on a condition of the page (``data-round``, ``data-state``, ``data-cutout-round``
attributes of ``#app``, visible texts) through Playwright's auto-waiting ``expect``; there are
no fixed sleeps. A screenshot after two rounds is written to ``out/ui/two-rounds.png``.
"""

from __future__ import annotations

import os
import re
import signal
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import Browser, BrowserContext, Page, expect

from service.process import ServerProcess
from tests.conftest import ready_server, server_env
from tests.support.images import encode, two_objects

KEY = "alice-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
WIDTH, HEIGHT = 480, 360
WAIT_MS = 90_000  # generous for a loaded CI machine; every wait returns as soon as its condition holds
BOX = (60.0, 70.0, 400.0, 290.0)

expect.set_options(timeout=WAIT_MS)


@pytest.fixture
def photo(tmp_path: Path) -> tuple[Path, np.ndarray, np.ndarray]:
    """The synthetic photo (red disc target, blue square distractor) as a PNG file."""
    image, target, distractor = two_objects(HEIGHT, WIDTH)
    path = tmp_path / "disc.png"
    path.write_bytes(encode(image))
    return path, target, distractor


@pytest.fixture
def desktop(browser: Browser) -> Iterator[BrowserContext]:
    context = browser.new_context(viewport={"width": 1400, "height": 860}, accept_downloads=True)
    context.set_default_timeout(WAIT_MS)
    yield context
    context.close()


def watch_page_errors(page: Page) -> list[str]:
    """Collect uncaught script errors of the page (there must be none)."""
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    return errors


def open_ui(page: Page, server: ServerProcess, key: str = KEY) -> None:
    """Load the page; the server requires a key, so the page asks for one: give it."""
    page.goto(f"{server.url}/")
    expect(page.locator("#key-form")).to_be_visible()
    page.fill("#api-key", key)
    page.click("#key-form button[type=submit]")
    expect(page.locator("#model-select option[value=classical]")).to_have_count(1)


def upload(page: Page, path: Path) -> None:
    page.set_input_files("#file-input", str(path))
    expect(page.locator("#app")).to_have_attribute("data-state", "ready")
    expect(page.locator("#conn")).to_have_attribute("data-conn", "open")


def on_screen(page: Page, x: float, y: float) -> tuple[float, float]:
    """Image pixel (x, y) -> page coordinates on the drawing canvas."""
    box = page.locator("#ink-canvas").bounding_box()
    assert box is not None
    return box["x"] + x * box["width"] / WIDTH, box["y"] + y * box["height"] / HEIGHT


def view_pixel(page: Page, x: float, y: float) -> list[int]:
    """RGBA of the photo canvas (photo + matte overlay) at image pixel (x, y)."""
    return page.evaluate(
        """([x, y, w, h]) => {
            const c = document.getElementById('view-canvas');
            return [...c.getContext('2d').getImageData(
                Math.floor(x * c.width / w), Math.floor(y * c.height / h), 1, 1).data];
        }""",
        [x, y, WIDTH, HEIGHT],
    )


def centre(mask: np.ndarray) -> tuple[float, float]:
    ys, xs = np.nonzero(mask)
    return float(xs.mean()), float(ys.mean())


def session_rounds(server: ServerProcess, sid: str) -> list[dict]:
    response = httpx.get(f"{server.url}/v1/sessions/{sid}", headers=AUTH, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()["rounds"]


def test_two_rounds_undo_and_download(
    api_server: ServerProcess,
    desktop: BrowserContext,
    photo: tuple[Path, np.ndarray, np.ndarray],
    ui_out: Path,
    tmp_path: Path,
) -> None:
    path, target, distractor = photo
    page = desktop.new_page()
    errors = watch_page_errors(page)
    app = page.locator("#app")
    open_ui(page, api_server)
    upload(page, path)
    disc_x, disc_y = centre(target > 0.5)
    plain = view_pixel(page, disc_x, disc_y)

    # round 1: a box dragged with the mouse
    page.click(".tool[data-tool=box]")
    expect(page.locator(".tool[data-tool=box]")).to_have_attribute("aria-pressed", "true")
    page.mouse.move(*on_screen(page, BOX[0], BOX[1]))
    page.mouse.down()
    page.mouse.move(*on_screen(page, 230, 180), steps=4)
    page.mouse.move(*on_screen(page, BOX[2], BOX[3]), steps=4)
    page.mouse.up()
    expect(app).to_have_attribute("data-round", "1")
    overlaid = view_pixel(page, disc_x, disc_y)
    # the overlay tints the target and dims the rest: either way the pixel changes
    assert max(abs(a - b) for a, b in zip(overlaid[:3], plain[:3], strict=True)) > 15, (plain, overlaid)

    # round 2: a background click on the distractor (keyboard shortcut 2 picks the tool)
    page.keyboard.press("2")
    expect(page.locator(".tool[data-tool=click-bg]")).to_have_attribute("aria-pressed", "true")
    square_x, square_y = centre(distractor)
    page.mouse.click(*on_screen(page, square_x, square_y))
    expect(app).to_have_attribute("data-round", "2")
    expect(app).to_have_attribute("data-cutout-round", "2")
    expect(page.locator("#round-count")).to_have_text("2")
    expect(page.locator("#latency-server")).to_have_text(re.compile(r"^\d+(\.\d+)? (ms|s)$"))
    expect(page.locator("#latency-rtt")).to_have_text(re.compile(r"^\d+(\.\d+)? (ms|s)$"))
    expect(page.locator("#cutout-img")).to_be_visible()
    shot = ui_out / "two-rounds.png"
    page.screenshot(path=str(shot))
    print(f"\nscreenshot after two rounds: {shot}")

    # the marks reached the server in original image pixels
    sid = app.get_attribute("data-session")
    assert sid
    rounds = session_rounds(api_server, sid)
    assert [r["round"] for r in rounds] == [1, 2]
    (box,) = rounds[0]["prompts"]
    assert box["type"] == "box"
    assert np.allclose([box["x0"], box["y0"], box["x1"], box["y1"]], BOX, atol=2.0), box
    (click,) = rounds[1]["prompts"]
    assert (click["type"], click["label"]) == ("click", "bg")
    assert np.allclose([click["x"], click["y"]], [square_x, square_y], atol=2.0), click
    expect(page.locator("#used-model")).to_have_text(rounds[1]["model"])

    # undo back to round 1
    page.click("#undo-btn")
    expect(app).to_have_attribute("data-round", "1")
    expect(app).to_have_attribute("data-cutout-round", "1")
    expect(page.locator("#round-count")).to_have_text("1")
    assert [r["round"] for r in session_rounds(api_server, sid)] == [1]

    # download the cut-out and the alpha of round 1
    with page.expect_download() as cutout_download:
        page.click("#download-cutout")
    cutout_path = tmp_path / cutout_download.value.suggested_filename
    cutout_download.value.save_as(cutout_path)
    cutout = Image.open(cutout_path)
    assert (cutout.format, cutout.mode, cutout.size) == ("PNG", "RGBA", (WIDTH, HEIGHT))
    served = httpx.get(f"{api_server.url}/v1/sessions/{sid}/rounds/1/cutout.png", headers=AUTH, timeout=30)
    assert cutout_path.read_bytes() == served.content

    with page.expect_download() as alpha_download:
        page.click("#download-alpha")
    alpha_path = tmp_path / alpha_download.value.suggested_filename
    alpha_download.value.save_as(alpha_path)
    alpha = Image.open(alpha_path)
    assert (alpha.mode, alpha.size) == ("L", (WIDTH, HEIGHT))
    served = httpx.get(f"{api_server.url}/v1/sessions/{sid}/rounds/1/alpha.png", headers=AUTH, timeout=30)
    assert alpha_path.read_bytes() == served.content
    assert np.array_equal(np.asarray(alpha), np.asarray(cutout)[..., 3])
    assert errors == []


def server_error(response: httpx.Response) -> dict[str, str]:
    assert response.is_error, response.text
    return response.json()["error"]


def test_server_errors_are_shown_in_words(
    api_server: ServerProcess, desktop: BrowserContext, photo: tuple[Path, np.ndarray, np.ndarray]
) -> None:
    path, target, _ = photo
    page = desktop.new_page()
    errors = watch_page_errors(page)
    app = page.locator("#app")
    banner = page.locator("#error")

    # a key is required: the page says so; a wrong key is refused in the server's words
    page.goto(f"{api_server.url}/")
    expect(page.locator("#key-form")).to_be_visible()
    expect(page.locator(".drop-key")).to_be_visible()
    page.fill("#api-key", "not-a-key")
    page.press("#api-key", "Enter")
    refused = server_error(httpx.get(f"{api_server.url}/v1/models", headers={"Authorization": "Bearer x"}))
    expect(banner).to_be_visible()
    expect(banner).to_contain_text(refused["message"])
    expect(banner).to_contain_text(refused["code"])
    page.fill("#api-key", KEY)
    page.press("#api-key", "Enter")
    expect(banner).to_be_hidden()

    # the model selector lists every served model and marks untrained ones
    models = httpx.get(f"{api_server.url}/v1/models", headers=AUTH, timeout=30).json()["models"]
    for model in models:
        option = page.locator(f"#model-select option[value={model['name']}]")
        expect(option).to_have_count(1)
        assert ("untrained" in option.inner_text()) == (not model["trained"])
    upload(page, path)

    # a text prompt the classical model refuses: the server's sentence is shown
    sid = app.get_attribute("data-session")
    page.select_option("#model-select", "classical")
    page.fill("#text-prompt", "the red disc")
    page.click("#send-text")
    probe = httpx.post(
        f"{api_server.url}/v1/sessions/{sid}/rounds",
        json={"prompts": [{"type": "text", "text": "the red disc"}], "model": "classical"},
        headers=AUTH,
        timeout=60,
    )
    unsupported = server_error(probe)
    expect(banner).to_contain_text(unsupported["message"])
    expect(banner).to_have_attribute("data-code", unsupported["code"])
    expect(app).to_have_attribute("data-state", "ready")
    expect(app).to_have_attribute("data-round", "0")
    expect(page.locator("#text-prompt")).to_have_value("the red disc")  # kept for editing
    page.click("#error-close")
    expect(banner).to_be_hidden()

    # "All people": the documented answer as a list, or the server's error in words
    direct = httpx.post(
        f"{api_server.url}/v1/instances",
        files={"image": ("disc.png", path.read_bytes(), "image/png")},
        headers=AUTH,
        timeout=120,
    )
    page.click("#people-btn")
    if direct.is_success:
        found = len(direct.json()["instances"])
        expect(page.locator("#instance-list li")).to_have_count(max(found, 1))
    else:
        failure = server_error(direct)
        expect(banner).to_contain_text(failure["message"])
        expect(banner).to_have_attribute("data-code", failure["code"])
        expect(banner).to_contain_text(f"HTTP {direct.status_code}")

    # the session vanishes under the page: the live socket's fatal error is explained, and
    # the offered restart opens a new session on the same photo
    assert httpx.delete(f"{api_server.url}/v1/sessions/{sid}", headers=AUTH).status_code == 204
    page.click(".tool[data-tool=click-fg]")
    page.mouse.click(*on_screen(page, *centre(target > 0.5)))
    expect(banner).to_have_attribute("data-code", "session_not_found")
    expect(banner).to_contain_text("No session")
    page.click("#error-action")
    expect(app).not_to_have_attribute("data-session", sid)
    expect(app).to_have_attribute("data-state", "ready")
    page.mouse.click(*on_screen(page, *centre(target > 0.5)))
    expect(app).to_have_attribute("data-round", "1")
    assert errors == []


def touch_drag(
    context: BrowserContext, page: Page, start: tuple[float, float], end: tuple[float, float]
) -> None:
    """A one-finger drag through the DevTools protocol (Playwright's touchscreen only taps)."""
    cdp = context.new_cdp_session(page)
    steps = 6
    cdp.send(
        "Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [{"x": start[0], "y": start[1]}]}
    )
    for i in range(1, steps + 1):
        x = start[0] + (end[0] - start[0]) * i / steps
        y = start[1] + (end[1] - start[1]) * i / steps
        cdp.send("Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": [{"x": x, "y": y}]})
    cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
    cdp.detach()


def tap(page: Page, selector: str) -> None:
    box = page.locator(selector).bounding_box()
    assert box is not None
    page.touchscreen.tap(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)


def test_touch_screen(
    api_server: ServerProcess, browser: Browser, photo: tuple[Path, np.ndarray, np.ndarray]
) -> None:
    path, target, _ = photo
    context = browser.new_context(
        viewport={"width": 390, "height": 844}, has_touch=True, is_mobile=True, device_scale_factor=2
    )
    context.set_default_timeout(WAIT_MS)
    try:
        page = context.new_page()
        errors = watch_page_errors(page)
        app = page.locator("#app")
        open_ui(page, api_server)
        upload(page, path)

        # a tap is a foreground click; then a one-finger drag is a box. (Tools are picked
        # before the drag: a synthetic DevTools touch drag can make Chromium swallow the click
        # of the tap right after it.)
        tap(page, ".tool[data-tool=click-fg]")
        expect(page.locator(".tool[data-tool=click-fg]")).to_have_attribute("aria-pressed", "true")
        page.touchscreen.tap(*on_screen(page, *centre(target > 0.5)))
        expect(app).to_have_attribute("data-round", "1")

        tap(page, ".tool[data-tool=box]")
        expect(page.locator(".tool[data-tool=box]")).to_have_attribute("aria-pressed", "true")
        touch_drag(context, page, on_screen(page, BOX[0], BOX[1]), on_screen(page, BOX[2], BOX[3]))
        expect(app).to_have_attribute("data-round", "2")

        rounds = session_rounds(api_server, app.get_attribute("data-session") or "")
        (click,) = rounds[0]["prompts"]
        assert (click["type"], click["label"]) == ("click", "fg")
        assert np.allclose([click["x"], click["y"]], centre(target > 0.5), atol=3.0), click
        (box,) = rounds[1]["prompts"]
        assert box["type"] == "box"
        assert np.allclose([box["x0"], box["y0"], box["x1"], box["y1"]], BOX, atol=3.0), box
        assert errors == []
    finally:
        context.close()


def test_page_is_served_with_its_modules(api_server: ServerProcess) -> None:
    """The UI is plain static files from the service itself: no build step, nothing external."""
    page = httpx.get(f"{api_server.url}/", timeout=30)
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    for asset in ("app.js", "api.js", "render.js", "style.css"):
        response = httpx.get(f"{api_server.url}/{asset}", timeout=30)
        assert response.status_code == 200, asset
        assert not re.search(r"https?://(?!www\.w3\.org/)", response.text), (
            f"{asset} links outside the server"
        )
    assert not re.search(r"(src|href)=\"https?://", page.text)


def test_work_survives_refused_files_lost_connections_and_fast_undos(
    redis_url: str, desktop: BrowserContext, photo: tuple[Path, np.ndarray, np.ndarray]
) -> None:
    """Found by a probe of the page in a real browser: a file the server refuses deleted the
    working session first; marks sent while the server was down were dropped; Enter after
    marking did nothing (the canvas never took focus); fast undo presses merged into one.
    A server of this test's own, stopped and started again on its port."""
    server = ready_server(server_env(redis_url))
    try:
        path, target, distractor = photo
        page = desktop.new_page()
        errors = watch_page_errors(page)
        app, banner = page.locator("#app"), page.locator("#error")
        open_ui(page, server)
        upload(page, path)
        sid = app.get_attribute("data-session")
        disc, square = centre(target > 0.5), centre(distractor)

        # marks held back (auto-send off), then Enter right after marking sends them
        page.click("#auto-send")
        page.mouse.click(*on_screen(page, *disc))
        expect(page.locator("#pending-note")).to_be_visible()
        page.keyboard.press("Enter")
        expect(app).to_have_attribute("data-round", "1")
        page.click("#auto-send")

        # a file the server refuses (415) leaves the session and its rounds as they were
        gif = path.with_suffix(".gif")
        Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(gif)
        page.set_input_files("#file-input", str(gif))
        expect(banner).to_have_attribute("data-code", "unsupported_media_type")
        expect(page.locator("#error-action")).to_be_hidden()  # the same file would only fail again
        assert app.get_attribute("data-session") == sid and app.get_attribute("data-round") == "1"
        assert [r["round"] for r in session_rounds(server, sid)] == [1]
        page.click("#error-close")

        # the server goes away: a mark made meanwhile is kept, and sent once it is back
        server.stop()
        page.click(".tool[data-tool=click-bg]")
        page.mouse.click(*on_screen(page, *square))
        expect(banner).to_have_attribute("data-code", "connection_lost")
        expect(page.locator("#refine-btn")).to_be_enabled()
        server.start()
        page.click("#error-action")  # Retry
        expect(app).to_have_attribute("data-round", "2")
        rounds = session_rounds(server, sid)
        assert [r["round"] for r in rounds] == [1, 2]
        (click,) = rounds[1]["prompts"]
        assert click["label"] == "bg" and np.allclose([click["x"], click["y"]], square, atol=2.0)

        # a file refused while a round is in flight: that round is still shown (the page froze,
        # found by a second probe); the server is paused so that the round waits for certain
        assert server.process is not None
        os.kill(server.process.pid, signal.SIGSTOP)
        try:
            page.mouse.click(*on_screen(page, 20, 20))
            expect(app).to_have_attribute("data-state", "busy")
            page.set_input_files("#file-input", str(gif))
        finally:
            os.kill(server.process.pid, signal.SIGCONT)
        expect(banner).to_have_attribute("data-code", "unsupported_media_type")
        expect(app).to_have_attribute("data-round", "3")
        assert app.get_attribute("data-session") == sid
        page.click("#error-close")

        # a round applied by another client of the session: the page's next round skips a number
        # and leaves no hole in its history (a hole threw on every redraw)
        httpx.post(
            f"{server.url}/v1/sessions/{sid}/rounds",
            json={"prompts": [{"type": "click", "x": 30, "y": 30, "label": "bg"}]},
            headers=AUTH,
            timeout=60,
        ).raise_for_status()
        page.mouse.click(*on_screen(page, 40, 40))
        expect(app).to_have_attribute("data-round", "5")

        # five fast undos undo five rounds
        for _ in range(5):
            page.keyboard.press("u")
        expect(app).to_have_attribute("data-round", "0")
        assert session_rounds(server, sid) == []
        expect(banner).to_be_hidden()
        assert errors == []
    finally:
        server.stop()
