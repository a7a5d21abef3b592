"""`cnnlab serve`: the page in a real browser, the JSON API under good and bad uploads, the predictor."""

import json
import os
import shutil
import struct
import urllib.error
import urllib.request
import uuid
import zlib
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from cnnlab.cli.main import main
from tests.serve.conftest import start_server, stop_server

pytest.importorskip("fastapi")


def post(url: str, data: bytes, filename: str = "photo.png", content_type: str | None = None, timeout: float = 120):
    """(status, JSON reply) of POST url/predict: multipart field 'file', or raw bytes with ``content_type``."""
    if content_type is None:
        boundary = uuid.uuid4().hex
        body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\n"
                "Content-Type: application/octet-stream\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
        content_type = f"multipart/form-data; boundary={boundary}"
    else:
        body = data
    req = urllib.request.Request(url + "predict", data=body, method="POST", headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def png_claiming(width: int, height: int) -> bytes:
    """A valid little PNG whose header claims width x height pixels (a decompression bomb's trick)."""
    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")


# ---------------------------------------------------------------------------- the page, in headless Chromium
def _browser():
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    if not chromium or not driver_path:
        pytest.skip("needs Debian's chromium and chromium-driver (make test installs them where apt-get can)")
    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--window-size=1000,660"):
        opts.add_argument(flag)
    return webdriver.Chrome(service=Service(executable_path=driver_path), options=opts)


@pytest.mark.slow
def test_page_in_a_browser_says_espresso(imagenet_server, coffee_png, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    _, url = imagenet_server
    driver = _browser()
    try:
        driver.get(url)
        assert "mobilenet_v2" in driver.title
        driver.find_element(By.ID, "file").send_keys(str(coffee_png))
        WebDriverWait(driver, 120).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#top td.cls"))
        classes = [td.text for td in driver.find_elements(By.CSS_SELECTOR, "#top td.cls")]
        assert classes[0] == "espresso" and len(classes) == 5
        captions = [c.text for c in driver.find_elements(By.TAG_NAME, "figcaption")]
        assert "Grad-CAM of the top class" in captions
        if os.environ.get("CNNLAB_SCREENSHOT"):  # how the README's picture is made
            driver.save_screenshot(os.environ["CNNLAB_SCREENSHOT"])
        # a file that is not an image: one line on the page, and the next good image still works
        bad = tmp_path / "notes.png"
        bad.write_text("these are notes, not pixels")
        driver.find_element(By.ID, "file").send_keys(str(bad))
        WebDriverWait(driver, 60).until(lambda d: "error" in d.find_element(By.ID, "status").get_attribute("class"))
        assert "not an image" in driver.find_element(By.ID, "status").text
    finally:
        driver.quit()


# ---------------------------------------------------------------------------- the JSON API
@pytest.mark.slow
def test_fifty_requests_good_and_bad_and_the_server_stays_up(imagenet_server, coffee_png, tmp_path):
    from cnnlab.cli.evaluate import predict_pretrained

    proc, url = imagenet_server
    good = coffee_png.read_bytes()
    expected = predict_pretrained("mobilenet_v2", "imagenet", [coffee_png])[0]["top"]  # what `cnnlab predict` prints
    cases = {
        "good": (good, "coffee.png", None, 200),
        "raw": (good, "", "image/png", 200),
        "text": (b"hello, not an image", "notes.txt", None, 400),
        "truncated": (good[: len(good) // 3], "cut.png", None, 400),
        "bomb": (png_claiming(60000, 60000), "bomb.png", None, 413),
        "empty": (b"", "empty.png", None, 400),
        "too_large": (os.urandom(11 * 1024 * 1024), "big.png", None, 413),
        "wrong_type": (good, "", "text/plain", 415),
    }
    order = (["good"] * 30 + ["raw"] * 2 + ["text", "truncated", "bomb", "empty", "too_large", "wrong_type"] * 3)[:50]
    assert len(order) == 50

    def one(name):
        data, filename, ctype, _ = cases[name]
        return name, *post(url, data, filename, ctype)

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(one, order))
    for name, status, reply in results:
        assert status == cases[name][3], (name, status, reply)
        if status == 200:
            assert reply["top"] == expected and reply["overlay"].startswith("data:image/png;base64,")
        else:
            detail = reply["detail"]
            assert isinstance(detail, str) and "\n" not in detail and "Traceback" not in detail
    details = {name: reply["detail"] for name, status, reply in results if status != 200}
    assert "not an image" in details["text"] and "truncated" in details["truncated"]
    assert "too many pixels" in details["bomb"] and "limit" in details["too_large"]
    assert proc.poll() is None  # still serving
    with urllib.request.urlopen(url + "info", timeout=30) as r:
        assert json.loads(r.read())["classes"] == 1000


# ---------------------------------------------------------------------------- the predictor over run folders
@pytest.fixture(scope="module")
def lenet_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "lenet"
    assert main(["train", "classify", "--data", "digits", "--limit", "200", "--limit-test", "50", "--model", "lenet5",
                 "--epochs", "1", "--batch-size", "50", "--quiet", "--no-tensorboard", "--threads", "1",
                 "--out", str(out)]) == 0
    return out


def _digit_png(tmp_path) -> bytes:
    from PIL import Image
    from sklearn.datasets import load_digits

    arr = (load_digits().images[0] * 16).clip(0, 255).astype(np.uint8)
    Image.fromarray(arr).resize((28, 28)).save(tmp_path / "d.png")
    return (tmp_path / "d.png").read_bytes()


def test_predictor_on_a_run_matches_cnnlab_predict(lenet_run, tmp_path, capsys):
    from cnnlab.serve import BadImage, Predictor

    data = _digit_png(tmp_path)
    p = Predictor(str(lenet_run))
    row = p.predict(data, "d.png")
    assert main(["predict", str(lenet_run), str(tmp_path / "d.png"), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert row["top"] == printed["top"] and row["image"] == "d.png"
    assert row["overlay"].startswith("data:image/png;base64,")
    with pytest.raises(BadImage) as e:
        p.predict(b"GIF89a and then nothing", "x.gif")
    assert e.value.status == 400 and "x.gif" in str(e.value) and "--skip-bad" not in str(e.value)
    assert p.info() == {"model": p.name, "task": "classify", "classes": 10}


def test_serve_refuses_what_it_cannot_show(tmp_path, capsys):
    text = tmp_path / "t.txt"
    text.write_text("abc abc abc\n" * 200)
    run = tmp_path / "lm"
    assert main(["train", "charlm", "--data", str(text), "--epochs", "1", "--hidden", "8", "--batch-size", "4",
                 "--bptt", "8", "--quiet", "--no-tensorboard", "--threads", "1", "--out", str(run)]) == 0
    assert main(["serve", str(run), "--port", "0"]) == 2
    assert "charlm run" in capsys.readouterr().err
    assert main(["serve"]) == 2
    assert "give a run folder" in capsys.readouterr().err
    assert main(["serve", "--model", "mobilenet_v2"]) == 2
    assert "needs --weights" in capsys.readouterr().err
    assert main(["serve", "--model", "mobilenet_v2", "--weights", "imagenet", "--port", "70000"]) == 2
    assert "0..65535" in capsys.readouterr().err


def test_port_in_use_is_one_line(lenet_run, capsys):
    import socket

    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    try:
        assert main(["serve", str(lenet_run), "--port", str(busy.getsockname()[1])]) == 2
        assert "already in use" in capsys.readouterr().err
    finally:
        busy.close()


@pytest.mark.slow
def test_detector_run_is_served_with_its_drawing(tmp_path):
    from cnnlab.data.scenes import make_scenes

    root = make_scenes("detect", 16, tmp_path / "s", n_val=4, n_test=4, size=64, objects="shapes")
    run = tmp_path / "det"
    assert main(["train", "detect", "--data", str(root), "--epochs", "1", "--batch-size", "8", "--warmup-epochs", "0",
                 "--quiet", "--no-tensorboard", "--threads", "1", "--out", str(run)]) == 0
    proc, url = start_server(run)
    try:
        photo = next((root / "test").rglob("*.png"), None) or next((root / "test").rglob("*.jpg"))
        status, reply = post(url, photo.read_bytes(), photo.name)
        assert status == 200 and "detections" in reply and reply["drawing"].startswith("data:image/png;base64,")
    finally:
        stop_server(proc)
