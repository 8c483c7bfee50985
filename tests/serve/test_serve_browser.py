"""`clipvideo serve` in a real browser: headless Chromium (Debian's chromium + chromium-driver)
driven by Selenium uploads a generated video, types class names and reads the rendered top-1.

No browser is ever downloaded: the driver path is given explicitly and Selenium Manager is
kept offline. `make test` installs the two Debian packages when it runs as root with apt-get.
"""

import os
import shutil

import httpx
import pytest
from serve_helpers import running_server

from clipvideo.serve import ServeSettings, build_app

BROWSERS = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
DRIVERS = ("/usr/bin/chromedriver",)


def find(paths, name):
    return next((p for p in paths if os.access(p, os.X_OK)), None) or shutil.which(name)


@pytest.fixture
def browser(monkeypatch):
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed: pip install -e '.[test]'")
    binary, driver = find(BROWSERS, "chromium"), find(DRIVERS, "chromedriver")
    if not binary or not driver:
        pytest.skip("no headless Chromium here: apt-get install chromium chromium-driver "
                    "(make test does it when run as root)")
    monkeypatch.setenv("SE_OFFLINE", "true")  # never let Selenium Manager fetch a browser or driver
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     "--window-size=1100,800", "--hide-scrollbars"):
        options.add_argument(argument)
    chrome = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=driver))
    chrome.set_page_load_timeout(60)
    try:
        yield chrome
    finally:
        chrome.quit()


def test_page_uploads_a_video_and_shows_the_top_classes(browser, tiny_clip_file, video_file, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ready
    from selenium.webdriver.support.ui import WebDriverWait

    app = build_app(backbone=str(tiny_clip_file), classes="moving right,rotating clockwise", precision="fp32",
                    settings=ServeSettings())
    typed = ["moving left", "moving right", "still red square", "rotating clockwise"]
    with running_server(app) as url:
        browser.get(url)
        wait = WebDriverWait(browser, 60)
        # The page fills the class box from GET /api/model once it has loaded.
        wait.until(lambda b: b.find_element(By.ID, "classes").get_attribute("value") == "moving right\nrotating clockwise")
        assert "zero-shot" in browser.find_element(By.ID, "model").text

        browser.find_element(By.ID, "video-file").send_keys(str(video_file))
        classes = browser.find_element(By.ID, "classes")
        classes.clear()
        classes.send_keys("\n".join(typed))
        browser.find_element(By.ID, "predict").click()
        top1 = wait.until(ready.visibility_of_element_located((By.ID, "top1"))).text

        # What the page shows is what the API answers for the same file and names.
        with open(video_file, "rb") as f:
            expected = httpx.post(f"{url}/api/predict", files={"video": ("moving.mp4", f)},
                                  data={"classes": ",".join(typed)}, timeout=60).json()
        assert top1 == expected["top"][0]["label"] and top1 in typed
        bars = browser.find_elements(By.CSS_SELECTOR, "#bars .bar")
        assert [b.find_element(By.CLASS_NAME, "name").text for b in bars] == [t["label"] for t in expected["top"]]
        assert browser.find_element(By.ID, "video-name").text == "moving.mp4"
        strip = browser.find_elements(By.CSS_SELECTOR, "#strip img")  # each frame, and the crop the model sees
        crops = browser.find_elements(By.CSS_SELECTOR, "#strip img.crop")
        assert len(strip) == 16 and len(crops) == 8 and all(img.get_property("naturalWidth") > 0 for img in strip)
        assert browser.find_element(By.ID, "meta-views").text == "views 8 frames x 1 clip x 1 crop"
        assert browser.find_element(By.ID, "meta-precision").text == "precision fp32 on cpu"
        assert not browser.find_element(By.ID, "error").is_displayed()
        screenshot = tmp_path / "serve.png"
        assert browser.save_screenshot(str(screenshot)) and screenshot.stat().st_size > 10_000

        # A text file named .mp4: the page shows the server's message and keeps working.
        notes = tmp_path / "notes.mp4"
        notes.write_text("not a video\n" * 50)
        browser.find_element(By.ID, "video-file").send_keys(str(notes))
        browser.find_element(By.ID, "predict").click()
        error = wait.until(ready.visibility_of_element_located((By.ID, "error"))).text
        assert error.startswith("cannot decode 'notes.mp4' as a video")
