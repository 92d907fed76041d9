"""The Django admin's racefree page, driven in headless Chromium (Debian's, through its
ChromeDriver and Selenium): a staff member logs in, sees the lease of a task running in another
process's coordinator, releases it after a confirmation page naming its token, and the key starts
again; one without ``racefree.release_lease`` sees the store but cannot release. The project is
served by ``runserver`` in a process of its own, on one SQLite store shared with this test.

The screenshot of the page with the lease goes to ``target/screenshots/django-admin.png``
(``RACEFREE_SCREENSHOT_DIR`` overrides the folder); the README shows one of them."""

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Iterator, List

import pytest

import racefree
import racefree.asyncio
from conftest import _free_port, spawn_server

TESTS = Path(__file__).parent
SCREENSHOTS = Path(os.environ.get("RACEFREE_SCREENSHOT_DIR") or TESTS.parents[1] / "target" / "screenshots")

USERS = """
from django.contrib.auth.models import Permission, User
store_perms = Permission.objects.filter(content_type__app_label="racefree")
operator = User.objects.create_user("operator", password="op-secret-1", is_staff=True)
operator.user_permissions.set(store_perms)
viewer = User.objects.create_user("viewer", password="view-secret-1", is_staff=True)
viewer.user_permissions.set(store_perms.filter(codename="view_store"))
print(sorted(store_perms.values_list("codename", flat=True)))
"""


def _answers_http(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture
def site(tmp_path: Path) -> Iterator[tuple]:
    """The admin's project on a free port: (base URL, store URL)."""
    if shutil.which("chromedriver") is None or shutil.which("chromium") is None:
        pytest.fail("chromium and chromedriver are not installed: run scripts/setup.sh")
    store_url = f"sqlite://{tmp_path / 'store.db'}"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "django_project.admin_settings",
        "PYTHONPATH": str(TESTS),
        "RACEFREE_TEST_DB": str(tmp_path / "admin.sqlite3"),
        "RACEFREE_TEST_STORE": store_url,
    }
    django = [sys.executable, "-m", "django"]
    subprocess.run([*django, "migrate", "--noinput", "-v", "0"], env=env, check=True)
    made = subprocess.run([*django, "shell", "-c", USERS], env=env, check=True, capture_output=True, text=True)
    assert made.stdout.strip().splitlines()[-1] == "['release_lease', 'view_store']", made.stdout
    server = None
    for _ in range(3):  # a port taken meanwhile: another one
        port = _free_port()
        server = spawn_server(
            [*django, "runserver", f"127.0.0.1:{port}", "--noreload"],
            "TERM",
            lambda: _answers_http(port),
            30,
            "django",
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        if server is not None:
            break
    assert server is not None, "runserver did not start"
    try:
        yield f"http://127.0.0.1:{port}", store_url
    finally:
        server.terminate()
        server.wait(timeout=10)


@pytest.fixture
def browser() -> Iterator["object"]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--window-size=1280,1000",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


class RunningTask:
    """A task under an asyncio TaskCoordinator, on a loop in a thread of its own: it runs until
    its lease is lost (then it is cancelled)."""

    def __init__(self, store_url: str, key: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.coordinator = racefree.asyncio.TaskCoordinator(racefree.open(store_url), ttl=3.0, renew_every=0.2)
        self.key = key
        self.cancelled = threading.Event()

    def call(self, coro: "object", timeout: float = 10) -> "object":
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)  # type: ignore[arg-type]

    def start(self) -> bool:
        async def work() -> None:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                self.cancelled.set()
                raise

        return bool(self.call(self.coordinator.start(self.key, work)))

    def close(self) -> None:
        self.call(self.coordinator.aclose())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


def leases(driver: "object") -> List[tuple]:
    from selenium.webdriver.common.by import By

    return [
        (row.get_attribute("data-lock"), row.get_attribute("data-key"), int(row.get_attribute("data-token")))
        for row in driver.find_elements(By.CSS_SELECTOR, "tr.racefree-lease")  # type: ignore[attr-defined]
    ]


def click_and_wait(driver: "object", element: "object") -> None:
    """Clicks ``element`` and waits until the page it leads to has replaced this one (a click
    returns before the next page is loaded)."""
    from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    page = driver.find_element(By.TAG_NAME, "html")  # type: ignore[attr-defined]
    element.click()  # type: ignore[attr-defined]

    def replaced(_: object) -> bool:
        try:
            page.is_enabled()  # type: ignore[attr-defined]
            return False
        except StaleElementReferenceException:
            return True
        except WebDriverException as err:
            # Asked in the middle of the navigation, chromedriver says so in other words (seen
            # once in CI; `staleness_of` knows only the exception above).
            if "does not belong to the document" in str(err):
                return True
            raise

    WebDriverWait(driver, 15).until(replaced)
    WebDriverWait(driver, 15).until(lambda d: d.execute_script("return document.readyState") == "complete")


def log_in(driver: "object", base: str, user: str, password: str) -> None:
    from selenium.webdriver.common.by import By

    driver.get(f"{base}/admin/login/?next=/admin/racefree/store/")  # type: ignore[attr-defined]
    driver.find_element(By.NAME, "username").send_keys(user)  # type: ignore[attr-defined]
    driver.find_element(By.NAME, "password").send_keys(password)  # type: ignore[attr-defined]
    click_and_wait(driver, driver.find_element(By.CSS_SELECTOR, "input[type=submit]"))  # type: ignore[attr-defined]


def test_an_operator_sees_a_running_task_s_lease_releases_it_and_the_key_starts_again(site: tuple, browser: "object") -> None:
    from selenium.webdriver.common.by import By

    base, store_url = site
    driver = browser
    task = RunningTask(store_url, "report:7")
    try:
        opened = racefree.open(store_url)
        racefree.Counter(opened, "report:7").claim("exec-1")
        racefree.EventGuard(opened, "streams", ["started", "ended"]).mark("report:7", "started")
        racefree.Records(opened, "reports").put("report:7", {"state": "running"})
        assert task.start()
        token = racefree.StartLock(racefree.open(store_url), "tasks").holder("report:7")
        assert token is not None
        token = token[0]

        log_in(driver, base, "operator", "op-secret-1")
        assert driver.current_url == f"{base}/admin/racefree/store/", driver.current_url  # type: ignore[attr-defined]
        assert ("tasks", "report:7", token) in leases(driver)
        for table, row in (("counters", "report:7 1 1"), ("streams", "streams report:7 1"), ("records", "reports report:7 1")):
            text = driver.find_element(By.ID, f"racefree-{table}").text  # type: ignore[attr-defined]
            assert row in text, text
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(SCREENSHOTS / "django-admin.png"))  # type: ignore[attr-defined]

        row = driver.find_element(By.CSS_SELECTOR, 'tr.racefree-lease[data-key="report:7"]')  # type: ignore[attr-defined]
        click_and_wait(driver, row.find_element(By.CSS_SELECTOR, "a.racefree-release"))
        confirm = driver.find_element(By.ID, "racefree-confirm").text  # type: ignore[attr-defined]
        assert f"token {token}" in confirm and "tasks/report:7" in confirm, confirm
        assert task.coordinator.running() == ["report:7"], "nothing is released before the confirmation"
        click_and_wait(driver, driver.find_element(By.ID, "racefree-confirm-release"))  # type: ignore[attr-defined]
        page = driver.find_element(By.TAG_NAME, "body").text  # type: ignore[attr-defined]
        assert f"released tasks/report:7 (token {token})" in page.lower(), page

        # The task learns at its next renewal that its lease is gone, and is cancelled.
        assert task.cancelled.wait(10), "the task whose lease was released was not cancelled"
        assert task.start(), "the key starts again"
        driver.get(f"{base}/admin/racefree/store/")  # type: ignore[attr-defined]
        (again,) = [t for lock, key, t in leases(driver) if key == "report:7"]
        assert again > token
        counts = driver.find_element(By.ID, "racefree-counts").text  # type: ignore[attr-defined]
        assert "racefree_releases_total" in counts, counts

        # A second release of the old token (a stale confirmation page) releases nothing.
        driver.get(f"{base}/admin/racefree/store/release/?lock=tasks&key=report:7&token={token}")  # type: ignore[attr-defined]
        click_and_wait(driver, driver.find_element(By.ID, "racefree-confirm-release"))  # type: ignore[attr-defined]
        assert "no longer holds it; nothing released" in driver.find_element(By.TAG_NAME, "body").text.lower()  # type: ignore[attr-defined]
        assert ("tasks", "report:7", again) in leases(driver)

        # A viewer sees the lease but has no release button, and the release page refuses them.
        driver.delete_all_cookies()  # type: ignore[attr-defined]
        log_in(driver, base, "viewer", "view-secret-1")
        assert driver.current_url == f"{base}/admin/racefree/store/", driver.current_url  # type: ignore[attr-defined]
        assert ("tasks", "report:7", again) in leases(driver), driver.find_element(By.TAG_NAME, "body").text  # type: ignore[attr-defined]
        assert driver.find_elements(By.CSS_SELECTOR, "a.racefree-release") == []  # type: ignore[attr-defined]
        assert driver.find_elements(By.ID, "racefree-sweep") == []  # type: ignore[attr-defined]
        driver.get(f"{base}/admin/racefree/store/release/?lock=tasks&key=report:7&token={again}")  # type: ignore[attr-defined]
        assert "403" in driver.title or "Forbidden" in driver.find_element(By.TAG_NAME, "body").text  # type: ignore[attr-defined]
        assert racefree.StartLock(racefree.open(store_url), "tasks").holder("report:7") is not None
    finally:
        task.close()
