# dffn_qgis: every target does its own set-up (scripts/setup.sh is quick when nothing is missing).
PY := .venv/bin/python
export QT_QPA_PLATFORM ?= offscreen

.PHONY: setup demo test test-core test-qgis340 test-qgis344 bench bench-apply bench-batch bench-count bench-scenes bench-scale package install clean

setup:
	@bash scripts/setup.sh

demo: setup
	$(PY) scripts/demo.py

test: setup
	$(PY) -m pytest tests -ra

test-core: setup
	$(PY) -m pytest tests -ra -m "not qgis"

bench: setup
	$(PY) scripts/bench.py
	$(PY) scripts/bench_scenes.py
	$(PY) scripts/bench_count.py
	$(PY) scripts/bench_scale.py

# every method on the 13 development scenes (hours on 2 cores; cached, so it can be done in parts)
bench-scenes: setup
	$(PY) scripts/bench_scenes.py $(ARGS)

# the endmember count on 40 generated scenes not used to choose it (a few minutes)
bench-count: setup
	$(PY) scripts/bench_count.py

bench-scale: setup
	$(PY) scripts/bench_scale.py

# unmixing with given spectra at scale (docs/BENCHMARKS.md, "Applying endmembers at scale")
bench-apply: setup
	$(PY) scripts/bench_apply.py

# the same scenes through `batch` with 1 worker and with one per core (docs/BATCH.md)
bench-batch: setup
	$(PY) scripts/bench_batch.py

# the QGIS tests under Debian 13's QGIS 3.40 and unstable's 3.44, in a debootstrap root (.roots/, needs root)
test-qgis340:
	bash scripts/qgis_root.sh trixie

test-qgis344:
	bash scripts/qgis_root.sh sid

package: setup
	$(PY) scripts/package.py

install: package
	$(PY) scripts/install_plugin.py

clean:
	rm -rf dist build demo_output test-artifacts .pytest_cache
