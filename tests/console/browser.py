"""Headless Chromium (Debian's chromium and chromium-driver, `make sysdeps`) driven by Selenium for the console's
browser tests: a driver, screenshots at the two widths every page must work at, and the browser console."""

import contextlib
import shutil
from pathlib import Path

from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.support.ui import WebDriverWait

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "browser-screenshots"  # ignored by git
WIDTHS = {"desktop": (1440, 900), "phone": (375, 812)}
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


def browser_available() -> bool:
    return shutil.which(CHROMIUM) is not None and shutil.which(CHROMEDRIVER) is not None


@contextlib.contextmanager
def chromium():
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1440,900", "--lang=en-GB"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def wait(driver, condition, timeout: float = 60.0, message: str = ""):
    """Wait for `condition(driver)` to be truthy (a correctness bound, not a speed assertion). The page
    re-renders lists (files, nodes) as answers arrive, so an element gone stale is looked up again."""
    return WebDriverWait(driver, timeout, poll_frequency=0.05,
                         ignored_exceptions=(StaleElementReferenceException,)).until(condition, message)


def severe_console_errors(driver) -> list[str]:
    """The browser console's SEVERE entries since the last call (reading the log drains it)."""
    return [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def screenshot_both_widths(driver, name: str) -> list[Path]:
    """Save the current page at 1440 and 375 px wide; returns the files written."""
    SCREENSHOTS.mkdir(exist_ok=True)
    written = []
    for label, (width, height) in WIDTHS.items():
        driver.set_window_size(width, height)
        path = SCREENSHOTS / f"{name}-{label}.png"
        driver.save_screenshot(str(path))
        written.append(path)
    driver.set_window_size(*WIDTHS["desktop"])
    return written


def page_overflows(driver) -> bool:
    """True when the page is wider than the window (a horizontal scroll bar on the whole page)."""
    return driver.execute_script(
        "return document.documentElement.scrollWidth > document.documentElement.clientWidth + 1")
