# Tasks. Run through ./dev on a fresh clone (it builds .venv first), or `just` inside it.
set shell := ["bash", "-euo", "pipefail", "-c"]
set positional-arguments

bin := ".venv/bin"

# list the recipes
help:
    @{{bin}}/just --list --unsorted

# simulator -> every analytics flow -> lake -> report, then the CQRS round trip; no broker
demo *args:
    {{bin}}/streamhouse demo "$@"

# lint, then the whole test suite; starts its own Kafka broker unless KAFKA_BOOTSTRAP_SERVERS is set
test *args: lint
    #!/usr/bin/env bash
    set -uo pipefail
    {{bin}}/python -m pytest "$@"
    code=$?
    # pytest exits 5 when it collected no tests: a suite that ran nothing proves nothing.
    if [ "$code" -eq 5 ]; then echo "test: pytest collected no tests" >&2; exit 1; fi
    exit "$code"

# ruff lint and format check; hadolint on the Dockerfile
lint:
    {{bin}}/ruff check .
    {{bin}}/ruff format --check .
    {{bin}}/hadolint Dockerfile

# a local Apache Kafka broker on a free loopback port, until Ctrl-C
broker *args:
    {{bin}}/streamhouse broker "$@"

# every benchmark under benchmarks/, figures printed
bench *args:
    for b in benchmarks/bench_*.py; do echo "== $b"; {{bin}}/python "$b" "$@"; done

# any streamhouse command, e.g. ./dev sh simulate --help
sh *args:
    {{bin}}/streamhouse "$@"
