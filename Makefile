# pamong: every target does its own set-up on a fresh machine (DESIGN §8).
#   make test            venv + RabbitMQ + database + pytest      (PYTEST_ARGS="-m unit -x")
#   make run             venv + servers (database on disk, .run/) + bus topology + the suite
#   make up / down       with Docker: the whole suite in Compose; without: the servers only
#   make stop            stop the servers only (deploy/local/stack.sh down)
#   make k8s-validate    deploy/ checked offline (tests/deploy; part of make test)
#   make status          which servers are used and whether they answer
# Servers: AMQP_URI (+ RABBIT_MANAGEMENT_URL) and MONGO_URI when they answer, else Docker Compose,
# else native processes under .run/ (see deploy/local/stack.sh for PAMONG_* settings).

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help
.DELETE_ON_ERROR:

PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed
STACK := deploy/local/stack.sh
# front-end libraries (web/package-lock.json) and, for tests/browser, Chromium + ChromeDriver
BROWSER := deploy/local/browser.sh
ASSETS_STAMP := pamong/web/static/vendor/.installed
PYTEST_ARGS ?=
BENCH_ARGS ?=
RUN_ARGS ?=
# test data is throw-away: `make test` keeps FerretDB's data in /dev/shm; `make run` and
# `make bench` keep it on disk in .run/ferretdb/. Our FerretDB is restarted when it runs
# with its data in the other place (deploy/local/stack.sh up).
TEST_DB_TMPFS ?= 1

# the servers' URIs for a recipe line
STACK_ENV = stack_env=$$($(STACK) env); eval "$$stack_env"
# the servers with the database on disk, and where its data is
STACK_UP_DISK = PAMONG_DB_TMPFS=0 $(STACK) up
SAY_DB = echo "make $@: database $$MONGO_URI, data: $${PAMONG_STACK_DB_DATA:-kept by that server}" >&2

.PHONY: help venv assets up stop down status test test-setup lint run bench docs clean distclean \
	k8s-validate test-quorum

help:
	@echo "make test [PYTEST_ARGS=...]   set up everything, run pytest against real servers"
	@echo "make run                      set up everything, declare the bus, run the suite"
	@echo "make up | down                with Docker: the whole suite in Compose (deploy/compose.yaml);"
	@echo "                              without one: start | stop the servers only (RabbitMQ + database)"
	@echo "make stop | status            the servers only (RabbitMQ + database)"
	@echo "make k8s-validate             render and check deploy/k8s offline (part of make test)"
	@echo "make lint | bench | docs      ruff check | benchmarks (bench/) | OpenAPI + AsyncAPI to docs/"
	@echo "make venv                     .venv with the pinned dependencies (constraints.txt)"
	@echo "make assets                   front-end libraries (web/package-lock.json) into pamong/web/static/vendor/"
	@echo "make clean | distclean        remove .run/ (stops the servers) | also .venv/ and .cache/"

venv: $(STAMP)

# re-installed only when pyproject.toml or constraints.txt change
$(STAMP): pyproject.toml constraints.txt
	@if [[ ! -x $(VENV)/bin/python ]] || ! $(VENV)/bin/python -m pip --version >/dev/null 2>&1; then \
	    command -v $(PYTHON) >/dev/null || { echo "make: $(PYTHON) is missing: install Python 3.11 (Debian: apt-get install python3)" >&2; exit 1; }; \
	    rm -rf $(VENV); \
	    $(PYTHON) -m venv $(VENV) || { rm -rf $(VENV); echo "make: '$(PYTHON) -m venv' failed: install the venv module (Debian: apt-get install python3-venv)" >&2; exit 1; }; \
	fi
	$(VENV)/bin/python -m pip install --disable-pip-version-check -q -c constraints.txt -e '.[dev]'
	@touch $@

# the pages' front-end libraries: `npm ci` in web/ (node_modules git-ignored), the files the
# pages serve copied into the git-ignored pamong/web/static/vendor/; again only when
# web/package.json or web/package-lock.json change
assets: $(ASSETS_STAMP)

$(ASSETS_STAMP): web/package.json web/package-lock.json
	$(BROWSER) assets

# `make up` / `make down`: where a Docker engine answers, the whole suite in Compose (image
# built from deploy/docker/Dockerfile, RabbitMQ 4, MongoDB 7, topology, every module,
# Prometheus, Grafana); elsewhere the servers only, natively (deploy/local/stack.sh)
COMPOSE_FILE := deploy/compose.yaml
DOCKER_UP = [[ "$${PAMONG_NO_DOCKER:-0}" != 1 ]] && command -v docker >/dev/null && \
	timeout 20 docker info >/dev/null 2>&1 && docker compose version >/dev/null 2>&1

up:
	@if $(DOCKER_UP); then docker compose -f $(COMPOSE_FILE) up -d --build --wait; \
	else $(STACK) up; fi

down:
	@if $(DOCKER_UP); then docker compose -f $(COMPOSE_FILE) down; else $(STACK) down; fi

stop:
	$(STACK) down

status:
	$(STACK) status

# venv + front-end assets + Chromium for tests/browser (installed when missing) + servers,
# as `make test` wants them (also used by .ci/run to time the set-up)
test-setup: venv assets
	$(BROWSER) ensure
	PAMONG_DB_TMPFS=$${PAMONG_DB_TMPFS:-$(TEST_DB_TMPFS)} $(STACK) up

test: test-setup
	@$(STACK_ENV); rc=0; $(VENV)/bin/pytest $(PYTEST_ARGS) || rc=$$?; \
	if [[ $$rc == 5 ]]; then echo "make test: pytest collected no tests (exit 5): that is a failure" >&2; fi; \
	exit $$rc

lint: venv
	$(VENV)/bin/ruff check .

# deploy/: kustomize renders every overlay (kubectl, or kustomize built with Go into .cache/),
# strict schema validation (kubernetes-validate, CRD schemas in deploy/k8s/schemas), references,
# module dependencies, policies, Compose, image, dashboard and alert metrics; no cluster, no
# network, no servers. `make test` runs the same tests (tests/deploy/) with the rest.
k8s-validate: venv
	$(VENV)/bin/pytest -q -p no:randomly -m deploy tests/deploy

# the event-kernel tests against quorum queues only (`make test` runs them with both types)
test-quorum: test-setup
	@$(STACK_ENV); $(VENV)/bin/pytest -q -m quorum tests/integration

# a development JWT secret for `make run`, kept with the servers' data (git-ignored .run/)
DEV_JWT_SECRET := .run/dev-jwt-secret

# RUN_ARGS: more `pamong run` options, e.g. RUN_ARGS="--first-port 9001"
run: venv assets
	$(STACK_UP_DISK)
	@[[ -s $(DEV_JWT_SECRET) ]] || { mkdir -p .run; umask 077; \
	    $(VENV)/bin/python -c 'import secrets; print(secrets.token_urlsafe(48))' >$(DEV_JWT_SECRET); }
	@$(STACK_ENV); $(SAY_DB); export JWT_SECRET="$${JWT_SECRET:-$$(cat $(DEV_JWT_SECRET))}"; \
	    $(VENV)/bin/pamong bus declare && exec $(VENV)/bin/pamong run --demo $(RUN_ARGS)

bench: venv assets
	$(STACK_UP_DISK)
	@$(STACK_ENV); $(SAY_DB); $(VENV)/bin/python -m bench $(BENCH_ARGS)

docs: venv
	$(VENV)/bin/pamong docs --out docs/

clean:
	$(STACK) clean

distclean: clean
	rm -rf $(VENV) .cache web/node_modules pamong/web/static/vendor
