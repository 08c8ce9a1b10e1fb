# The doors: `make run` (embedded stack on http://127.0.0.1:8000), `make test` (whole suite), `make bench`.
PY := .venv/bin/python
STAMP := .venv/.installed

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv .venv
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

# Debian packages the runtimes, the shell userland and the browser tests need: each feature adds its own
# line. Installed once (apt, as root); a package already installed costs a dpkg query.
APT_PACKAGES :=
APT_PACKAGES += golang
APT_PACKAGES += busybox-static
# Node.js runtime: Debian's nodejs, unless a node is already on the PATH (NodeSource's or a tarball's).
APT_PACKAGES += $(if $(shell command -v node),,nodejs)
APT_PACKAGES += chromium chromium-driver

sysdeps:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then echo "installing Debian packages:$$missing"; apt-get update -q && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; fi

install: $(STAMP) sysdeps

run: $(STAMP) sysdeps
	$(PY) manage.py migrate --noinput
	$(PY) manage.py rundemo

test: $(STAMP) sysdeps
	$(PY) -m pytest

lint: $(STAMP)
	.venv/bin/ruff check .

bench: $(STAMP) sysdeps
	$(PY) bench/engine.py
	$(PY) bench/api.py
	$(PY) bench/snapshots.py
	$(PY) bench/files.py

.PHONY: install sysdeps run test lint bench
