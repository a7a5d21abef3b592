import os
import re
import subprocess
import sys
import time

import pytest


def start_server(*args, timeout: float = 180.0):
    """`cnnlab serve ... --port 0` in its own process; returns (process, base URL) once it listens."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "-m", "cnnlab", "serve", *map(str, args), "--port", "0", "--threads", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    t0 = time.time()
    lines = []
    while time.time() - t0 < timeout:
        line = proc.stdout.readline()
        if not line:
            if proc.poll() is not None:
                break
            continue
        lines.append(line)
        m = re.search(r"(http://127\.0\.0\.1:\d+/)", line)
        if m:
            return proc, m.group(1)
    proc.kill()
    raise AssertionError("the server did not start: " + "".join(lines)[-2000:])


def stop_server(proc):
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture(scope="session")
def imagenet_server():
    pytest.importorskip("fastapi")
    pytest.importorskip("uvicorn")
    proc, url = start_server("--model", "mobilenet_v2", "--weights", "imagenet")
    yield proc, url
    stop_server(proc)


@pytest.fixture(scope="session")
def coffee_png(tmp_path_factory):
    from PIL import Image
    from skimage import data

    path = tmp_path_factory.mktemp("photos") / "coffee.png"
    Image.fromarray(data.coffee()).save(path)
    return path
