# UpGestão — the two commands of a fresh machine are `make up` and `make test`.
#
#   make up      install into .venv (if needed) and run the whole platform in the foreground
#   make test    install (if needed), check RabbitMQ/PostgreSQL, ruff, the layer contracts (lint-imports), pytest:
#                the infra tests in two parts and the others (offline, as test-fast) side by side, then the
#                infra tests that stop the broker alone (scripts/test_all.py)
#   make lint    ruff and the layer contracts (lint-imports, [tool.importlinter] in pyproject.toml)
#   make test-fast  every test that needs neither RabbitMQ nor PostgreSQL (conftest.py marks the others
#                `infra`), with the broker and the databases pointed at a closed port to prove it
#   make bench   benchmarks (bench/run.py); `make bench SCENARIOS=outbox_publish` for one
#   make chaos   faults under a recorded workload, then every promise checked (bench/chaos.py);
#                `make chaos DURATION=1800 SEED=7`, CHAOS_DATABASE=sqlite for the embedded default
#   make fuzz    schemathesis against /v1/openapi.json as admin, attendant and dpo, every operation and check;
#                FUZZ_EXAMPLES per operation, mode and persona (25: about 5,000 cases); tally in bench/results/fuzz.json
#   make fuzz-parsers  the hypothesis parser fuzzers with 5,000 random examples each (CI runs 200, fixed; the
#                live-push frame fuzz starts a gateway, so RabbitMQ must be up as for make test)
#   make soak    an hour of the chaos workload without faults, RSS and open fds of every process sampled
#                (bench/soak.py; SOAK_DURATION seconds, 3600): bench/results/soak.json and docs/soak-rss.png
#   make clean   remove var/ and bench results (keeps .venv)
#   make lock    after changing a pin in a pyproject.toml or requirements-dev.txt: re-resolve requirements.lock
#                (scripts/lock.py, uv pip compile --generate-hashes); `make venv` installs only what it pins
#   make images        a bookworm base from Debian's packages, then one image per service (deploy/images/)
#   make images-smoke  the whole platform from those images: /readyz, a login and /v1/me through the gateway
#   make k8s-check     every overlay of deploy/k8s rendered and validated offline (CI runs it in the tests)
#   make restore-drill dump, drop, restore and compare every service's database and the audit log's root
#   make browser-deps  Debian's chromium (apt-get, as root) and tests/browser's node packages (npm ci): the
#                      privacy centre's browser tests need them; `make test` runs it first
#   make screens       every page of the privacy centre at 1280x800 and 390x844 into docs/screens/ (its own
#                      platform, seeded through the API; tests/browser/screens.py)
#   make observability-deps  Debian's prometheus package (promtool, prometheus) when /usr/bin/promtool is missing,
#                      its own daemon never left running; `make test` runs it first (promtool tests the alert rules)
#   make observe       a real Prometheus on 127.0.0.1:9090 scraping the running `make up` platform, the alert rules
#                      of deploy/observability/rules.yml loaded (scripts/observability.py)

SHELL   := /bin/bash
PYTHON  ?= python3
VENV    := .venv
VPY     := $(VENV)/bin/python
STAMP   := $(VENV)/.upgestao-installed

# The kernel and every folder of services/ with a pyproject.toml: a service is added by its folder alone
# (its pyproject declares it in the `upgestao.services` entry-point group, which the launcher, the tests
# and the deploy checks read).
PACKAGES := kernel $(patsubst %/pyproject.toml,%,$(sort $(wildcard services/*/pyproject.toml)))
# Reinstall when any of these is newer than the stamp (a changed entry point is a changed pyproject.toml),
# or when the set of packages is not the one the stamp names.
DEPS     := pyproject.toml $(addsuffix /pyproject.toml,$(PACKAGES)) \
            requirements.lock $(wildcard requirements*.txt) $(wildcard $(addsuffix /requirements*.txt,$(PACKAGES)))

SCENARIOS ?=
DURATION  ?= 120
SEED      ?=
FAULTS    ?=
FUZZ_EXAMPLES ?= 25

export PIP_DISABLE_PIP_VERSION_CHECK := 1
export PIP_NO_INPUT := 1

.PHONY: up test test-fast lint bench chaos fuzz fuzz-parsers soak clean venv rabbitmq-management \
        lock images images-smoke k8s-check restore-drill browser-deps screens observability-deps observe

up: venv
	$(VPY) scripts/platformctl.py up

test: venv rabbitmq-management browser-deps observability-deps
	$(VPY) scripts/platformctl.py preflight --wait 60
	@rc=0; \
	echo "$(VPY) -m ruff check ."; $(VPY) -m ruff check . || rc=$$?; \
	echo "$(VENV)/bin/lint-imports"; $(VENV)/bin/lint-imports || rc=$$?; \
	echo "$(VPY) scripts/test_all.py"; $(VPY) scripts/test_all.py || rc=$$?; \
	if [ $$rc -ne 0 ]; then echo "make test: FAILED (last non-zero exit: $$rc; pytest 5 = no tests ran)" >&2; fi; \
	exit $$rc

lint: venv
	@rc=0; $(VPY) -m ruff check . || rc=$$?; $(VENV)/bin/lint-imports || rc=$$?; exit $$rc

# No broker, no database server: UPGESTAO_TEST_OFFLINE=1 points them all at a closed port (conftest.py);
# one pytest per core (scripts/test_fast.py). `make test-fast ARGS="-k merkle"` passes ARGS to pytest.
test-fast: venv
	$(VPY) scripts/test_fast.py $(ARGS)

bench: venv
	@command -v wrk >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing wrk (apt-get) for the HTTP benchmark"; \
	    export DEBIAN_FRONTEND=noninteractive; \
	    apt-get install -y -q wrk >/dev/null 2>&1 || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q wrk >/dev/null 2>&1; } \
	      || echo "could not install wrk: bench falls back to its Python load generator"; \
	  else echo "wrk not installed (needs root: apt-get install wrk): bench uses its Python load generator"; fi; }
	$(VPY) bench/run.py $(SCENARIOS)

# Restarts the machine's own RabbitMQ (stop_app/start_app) and PostgreSQL during the run:
# not while other work uses them (FAULTS=kill,stall leaves both alone).
chaos: venv
	$(VPY) scripts/platformctl.py preflight --wait 60
	$(VPY) bench/chaos.py --duration $(DURATION) $(if $(SEED),--seed $(SEED)) $(if $(FAULTS),--faults $(FAULTS))

# Its own platform on the machine's RabbitMQ and PostgreSQL (like `make test`); CI runs the same test bounded.
fuzz: venv rabbitmq-management
	$(VPY) scripts/platformctl.py preflight --wait 60
	FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(VPY) -m pytest tests/test_api_fuzz_e2e.py -p no:cacheprovider -q -s

# Body schemas, photo sanitiser, audit ingest parser, export verifier, JWT parsing (kernel/tests/fuzzing.py);
# a failure prints a @reproduce_failure blob. --timeout=0: the suite's 180 s per test is for CI's profile.
FUZZ_PARSER_PATHS := services/identity/tests/fuzz services/privacy/tests/fuzz services/integration-gateway/tests/fuzz
fuzz-parsers: venv
	HYPOTHESIS_PROFILE=long $(VPY) -m pytest $(FUZZ_PARSER_PATHS) -q --timeout=0

# Not in CI (an hour). matplotlib draws the PNG: installed here only (requirements-bench.txt).
SOAK_DURATION ?= 3600
soak: venv
	$(VPY) scripts/platformctl.py preflight --wait 60
	$(VPY) -m pip install -q -r requirements-bench.txt
	$(VPY) bench/soak.py --duration $(SOAK_DURATION)

clean:
	rm -rf var bench/results/*.json

# -- deploy (issue 16): images, manifests, backups ------------------------------

# Re-resolve requirements.lock (every package's pinned dependencies, with hashes) after a pyproject change.
lock: | $(VPY)
	$(VPY) scripts/lock.py

# The base rootfs (mmdebstrap of bookworm), then one image per service (buildah, chroot isolation).
images:
	$(PYTHON) deploy/images/build.py --strict-size

# The whole platform from those images (buildah run, host network) on the machine's RabbitMQ and PostgreSQL,
# in production mode, on a vhost and databases of its own (all removed after). The venv gives the Platform
# (scripts/upgestao_platform.py) its list of services; every process it starts is an image's.
images-smoke: images venv
	$(VPY) deploy/images/smoke.py

# Every overlay of deploy/k8s rendered and validated offline against the vendored schemas, plus the policy check.
k8s-check: venv
	$(VPY) scripts/k8s_check.py

# Seed through the gateway, pg_dump, drop, restore, rebuild, compare read models and the audit log's signed root.
restore-drill: venv
	$(VPY) scripts/platformctl.py preflight --wait 60
	$(VPY) scripts/restore_drill.py

# -- the privacy centre's browser tests (issue 17) ------------------------------

# Debian's chromium when /usr/bin/chromium is missing (apt-get update only if the install fails without it),
# then playwright-core and axe-core at the versions tests/browser/package-lock.json pins (npm ci), again
# whenever the lock is newer than what npm installed (node_modules/.package-lock.json).
BROWSER_DIR := tests/browser
browser-deps:
	@if [ ! -x /usr/bin/chromium ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing Debian's chromium (apt-get) for the browser tests"; \
	    export DEBIAN_FRONTEND=noninteractive; \
	    apt-get install -y -q chromium >/dev/null 2>&1 \
	      || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium >/dev/null; } \
	      || { echo "make browser-deps: could not install chromium" >&2; exit 1; }; \
	  else echo "make browser-deps: /usr/bin/chromium is missing (as root: apt-get install chromium)" >&2; exit 1; fi; \
	fi
	@command -v npm >/dev/null || { echo "make browser-deps: npm is missing (node 18 or later: apt-get install nodejs npm)" >&2; exit 1; }
	@if [ ! -f $(BROWSER_DIR)/node_modules/.package-lock.json ] \
	    || [ $(BROWSER_DIR)/package-lock.json -nt $(BROWSER_DIR)/node_modules/.package-lock.json ]; then \
	  echo "cd $(BROWSER_DIR) && npm ci"; \
	  cd $(BROWSER_DIR) && npm ci --no-audit --no-fund --loglevel=error; \
	fi

screens: venv browser-deps
	$(VPY) scripts/platformctl.py preflight --wait 60
	$(VPY) $(BROWSER_DIR)/screens.py

# -- observability (issue 18): promtool and a local Prometheus ------------------

# Debian's prometheus package (promtool for the rules' tests, prometheus for `make observe` and the alert e2e
# test) when /usr/bin/promtool is missing, as root: --no-install-recommends (no node exporter), and no daemon
# from its postinst: a policy-rc.d that refuses every start while apt runs (unless the machine already has one),
# then the package's own init script stops whatever still runs from its pidfile and the service is disabled
# (the tests and `make observe` start their own Prometheus on their own ports and data directories).
observability-deps:
	@if [ ! -x /usr/bin/promtool ] || [ ! -x /usr/bin/prometheus ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing Debian's prometheus (apt-get) for promtool and the alert tests"; \
	    export DEBIAN_FRONTEND=noninteractive; \
	    own_policy=; if [ ! -e /usr/sbin/policy-rc.d ]; then \
	      printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d && own_policy=1; fi; \
	    apt-get install -y -q --no-install-recommends prometheus >/dev/null 2>&1 \
	      || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q --no-install-recommends prometheus >/dev/null; }; \
	    rc=$$?; if [ -n "$$own_policy" ]; then rm -f /usr/sbin/policy-rc.d; fi; \
	    if [ $$rc -ne 0 ]; then echo "make observability-deps: could not install prometheus" >&2; exit 1; fi; \
	    if [ -x /etc/init.d/prometheus ] && [ -s /run/prometheus/prometheus.pid ]; then \
	      echo "stopping the prometheus daemon the package started"; /etc/init.d/prometheus stop >/dev/null 2>&1 || true; fi; \
	    if [ -d /run/systemd/system ]; then systemctl disable --now prometheus.service >/dev/null 2>&1 || true; fi; \
	    update-rc.d prometheus disable >/dev/null 2>&1 || true; \
	  else echo "make observability-deps: /usr/bin/promtool is missing (as root: apt-get install prometheus)" >&2; exit 1; fi; \
	fi

# A real Prometheus (Debian's) scraping every metrics endpoint of the platform `make up` runs (the targets
# file it writes in its data directory), with deploy/observability/rules.yml; UI on 127.0.0.1:9090.
observe: venv observability-deps
	$(VPY) scripts/observability.py observe

# -- the virtualenv -----------------------------------------------------------

venv: $(STAMP)
	@grep -qxF "$(PACKAGES)" $(STAMP) || { rm -f $(STAMP); $(MAKE) --no-print-directory $(STAMP); }

$(VPY):
	$(PYTHON) -m venv $(VENV) || { echo "python3 -m venv failed: on Debian install python3-venv" >&2; exit 1; }

# Third-party packages only from requirements.lock, each checked against its hashes; then our own packages
# from their folders without dependencies (setuptools comes from the lock: no build isolation, no download);
# pip check proves the lock covers every requirement of every package.
$(STAMP): $(DEPS) | $(VPY)
	$(VPY) -m pip install -q --require-hashes --no-deps -r requirements.lock
	$(VPY) -m pip install -q --no-deps --no-build-isolation $(foreach p,$(PACKAGES),-e $(p))
	$(VPY) -m pip check
	@echo "$(PACKAGES)" > $@

# Idempotent; needs root (or the broker's Erlang cookie): ignore failure otherwise.
rabbitmq-management:
	@if command -v rabbitmq-plugins >/dev/null; then \
	  rabbitmq-plugins -q enable rabbitmq_management >/dev/null 2>&1 \
	    || echo "note: could not run 'rabbitmq-plugins enable rabbitmq_management' (not root?); continuing"; \
	fi
