"""A real browser for the web tests: Debian's chromium, headless, driven by Playwright, and
the app served on a free localhost port."""

import contextlib
import shutil
import socket

import pytest
from playwright.sync_api import sync_playwright

ANSWER_S = 120_000  # ms: a turn of the tiny model takes seconds, but CI machines are shared
CHROMIUM_ARGS = ["--no-sandbox", "--disable-dev-shm-usage"]  # root in CI; small /dev/shm


@contextlib.contextmanager
def serve(talker, out_dir):
    """``speechgpt web``'s app for ``talker`` on a free port; yields its URL."""
    from speechgpt import web

    app = web.build_app(talker, out_dir)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        app.close()


@pytest.fixture(scope="module")
def browser():
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.fail("the web test needs Debian's chromium: make system (apt-get install chromium)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()
