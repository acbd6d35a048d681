# lkbot: the two commands that matter are `make run` and `make test`.
PY := .venv/bin/python

.PHONY: help setup run chat test test-fast lint format schema bench bench-quick clean

help:  ## this list
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

setup:  ## create .venv, install the bot, dev tools and local model; build livekit-server, the web client and page
	@scripts/setup.sh
	@scripts/install-livekit-server.sh
	@scripts/install-redis.sh
	@scripts/install-web.sh

run: setup  ## start a local livekit-server and the bot (local model unless an LLM is set)
	$(PY) -m bot up

chat: setup  ## chat with the bot started by `make run` (room "demo")
	$(PY) -m bot chat --room demo --identity $${USER:-me}

lint: setup  ## ruff format check, ruff lint, mypy strict
	$(PY) -m ruff format --check bot tests bench
	$(PY) -m ruff check bot tests bench
	$(PY) -m mypy

test: lint  ## every check and every test: unit, end-to-end (real livekit-server) and browser (Chromium)
	@scripts/install-web.sh --browser
	$(PY) -m pytest

test-fast: setup  ## unit tests only (no livekit-server)
	$(PY) -m pytest -m "not e2e"

bench: setup  ## benchmarks over a real server (~30 min); publishes docs/performance.md
	$(PY) -m bench --publish
	$(PY) -m bench.burst --publish
	$(PY) -m bench.store --publish
	$(PY) -m bench.idle --publish
	$(PY) -m bench.fleet_api --rooms 200 --publish
	$(PY) -m bench.client_tool --publish
	$(PY) -m bench.flood --publish
	$(PY) -m bench.goals --publish

bench-quick: setup  ## a small benchmark smoke run (~1 min)
	$(PY) -m bench --quick

format: setup  ## apply ruff formatting and fixes
	$(PY) -m ruff format bot tests bench
	$(PY) -m ruff check --fix bot tests bench

schema: setup  ## regenerate docs/protocol.schema.json from the models
	$(PY) -m bot schema > docs/protocol.schema.json

clean:  ## remove .venv and .tools
	rm -rf .venv .tools
