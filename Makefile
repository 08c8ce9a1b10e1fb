# The doors: `make run` (embedded stack on http://127.0.0.1:8000), `make test` (whole suite), `make bench`.
PY := .venv/bin/python
STAMP := .venv/.installed

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv .venv
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(PY) manage.py migrate --noinput
	$(PY) manage.py rundemo

test: $(STAMP)
	$(PY) -m pytest

lint: $(STAMP)
	.venv/bin/ruff check .

bench: $(STAMP)
	$(PY) bench/engine.py
	$(PY) bench/api.py
	$(PY) bench/snapshots.py

.PHONY: install run test lint bench
