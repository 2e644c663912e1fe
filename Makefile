# Cove: `make run` starts a server, deploys the example and calls it; `make test` runs the suite.
SHELL := /bin/bash
UV := $(shell command -v uv 2>/dev/null || echo $(CURDIR)/.tools/bin/uv)
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: run test test-data test-unit test-asgi test-e2e test-chaos test-k8s lint bench clean bytecode

$(CURDIR)/.tools/bin/uv:
	python3 -m pip install --quiet --disable-pip-version-check --target $(CURDIR)/.tools uv

# Compiled to bytecode at install: where PYTHONDONTWRITEBYTECODE is set (CI images set it) nothing else writes
# the .pyc files, and every process would compile SQLAlchemy, FastAPI and the rest from source again (seconds each).
$(VENV)/.synced: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --all-groups --compile-bytecode
	touch $@

# Cove's own modules, for the same reason: the tests start hundreds of server, worker and CLI processes. Quick when
# nothing changed (compileall compares timestamps).
bytecode: $(VENV)/.synced
	@$(PY) -m compileall -q src >/dev/null

run: bytecode
	@# Isolated containers need crun (and nftables for allow-listed networks); install them where we can
	@# (root on Debian), else Cove says it runs without.
	@if ! { command -v crun && command -v nft; } >/dev/null && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -qq && apt-get install -y -qq crun nftables >/dev/null || true; fi
	$(PY) scripts/quickstart.py

# The whole suite, as CI runs it: the unit tests first, so that a broken one fails in seconds, then the rest.
# Each test is of one kind, unit, asgi or e2e (tests/conftest.py says which is which); the targets below run one.
test: bytecode
	$(PY) -m pytest -m 'unit and not chaos'
	$(PY) -m pytest -m 'not unit and not chaos'

# The one online step of the tests, run before them (CI does): a Debian suite synced from the mirror into a reservoir
# (tests/debian_reservoir.py) that the image tests serve on loopback as their only source. Without it they skip.
test-data: $(VENV)/.synced
	$(PY) tests/debian_reservoir.py

# In-process tests only: no server, container, socket or build.
test-unit: bytecode
	$(PY) -m pytest -m 'unit and not chaos'

# The gateway's app in-process through httpx's ASGITransport.
test-asgi: bytecode
	$(PY) -m pytest -m 'asgi and not chaos'

# Real servers, workers, containers, PostgreSQL, builds and sockets.
test-e2e: bytecode
	$(PY) -m pytest -m 'e2e and not chaos'

# SIGKILL of containers, the worker and the gateway during a drain (a couple of minutes); `make test` skips it.
test-chaos: bytecode
	$(PY) -m pytest -m chaos tests/security/test_chaos.py

# The Helm chart on a real single-node Kubernetes built here (docs/kubernetes.md): root on Debian 12. The first run
# builds the Kubernetes binaries, the images and the helm-sdkpy venv (cached in /var/tmp/cove-k8s); the cluster
# is started for the run and torn down after it.
test-k8s: bytecode
	deploy/k8s-lab/build.sh >/dev/null
	deploy/k8s-lab/setup-helm.sh >/dev/null
	deploy/k8s-lab/cluster.sh up
	COVE_K8S_E2E=1 $(PY) -m pytest -s tests/k8s; rc=$$?; deploy/k8s-lab/cluster.sh down; exit $$rc

lint: $(VENV)/.synced
	$(VENV)/bin/ruff check src tests bench scripts examples
	$(VENV)/bin/ruff format --check src tests bench scripts examples
	$(VENV)/bin/mypy src tests

bench: $(VENV)/.synced
	$(PY) bench/endpoint.py

# docs/options.md, the reference of every decorator option, rendered from the config's field documentation.
.PHONY: docs
docs: $(VENV)/.synced
	$(PY) scripts/gen_options.py

clean:
	rm -rf $(VENV) .tools
