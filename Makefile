# aiinfra.gpu_cluster — the two commands a newcomer types are `make demo` and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV        ?= .venv
PY          := $(VENV)/bin/python
ANSIBLE_PB  := $(VENV)/bin/ansible-playbook
COLL_LINK   := .collections/ansible_collections/aiinfra/gpu_cluster
SUDO        := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT_PKGS    := podman runc debootstrap openssh-client rsync python3-venv shellcheck iproute2
STAMP       := $(VENV)/.setup-stamp
# the lowest ansible-core meta/runtime.yml claims (requires_ansible), for the CI job that runs on it
VENV_LOWEST ?= .venv-lowest
LOWEST_STAMP := $(VENV_LOWEST)/.setup-stamp
PROMTOOL    := $(VENV)/bin/promtool
# Azurite, Microsoft's Azure Storage emulator (npm), for the az:// tests; project-local, never global
AZURITE     := .cache/npm/node_modules/.bin/azurite-blob
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg

.PHONY: help setup setup-lowest demo test test-unit test-integration test-scale test-tensorflow sanity lint galaxy test-molecule teardown bench build clean test-lifetime test-slurm test-spot test-health

help:
	@echo "make demo      provision the local cluster (podman) and run the main job (site.yml)"
	@echo "make test      the whole test suite (what CI runs)"
	@echo "make setup     system packages + .venv + collection link (idempotent; demo/test run it)"
	@echo "make test-scale the scale set (8 local nodes, default forks; not in make test)"
	@echo "make test-tensorflow the TensorFlow set (the role; TensorFlow jobs on 2 local nodes; not in make test)"
	@echo "make test-lifetime  idle local clusters stop themselves (gpu_cluster_idle_minutes; not in make test)"
	@echo "make test-spot      a spot node preempted mid-run: notice, push, replacement, resume; azure's self-stop against the ARM double (not in make test)"
	@echo "make test-slurm the Slurm set (3 local nodes; not in make test)"
	@echo "make test-health the health gate (3 local nodes, one link slowed; not in make test)"
	@echo "make teardown  remove the demo cluster"
	@echo "make bench     benchmarks (benchmarks/)"
	@echo "make lint      ansible-lint --profile production over the whole tree (galaxy.yml included)"
	@echo "make test-molecule every role's Molecule scenario, and one from the installed collection"
	@echo "make galaxy    antsibull-changelog lint, antsibull-docs lint, galaxy-importer on the built tarball"

setup: $(STAMP) $(COLL_LINK) .ssh/id_ed25519 $(PROMTOOL) $(AZURITE)

$(STAMP): requirements.txt requirements-dev.txt
	@missing=""; for p in $(APT_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing system packages:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing >/dev/null; \
	fi
	@[ -x $(PY) ] || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-dev.txt
	@touch $@

# promtool (checks and unit-tests the monitoring role's alert rules), taken out of Debian's prometheus
# package without installing it: installing the package would also start a Prometheus server here.
$(PROMTOOL): | $(STAMP)
	@tmp=$$(mktemp -d) && chmod 0777 $$tmp && cd $$tmp && \
	  apt-get download -q prometheus >/dev/null 2>&1 || { $(SUDO) apt-get update -qq && apt-get download -q prometheus; } && \
	  dpkg-deb -x prometheus_*.deb root && install -m 0755 root/usr/bin/promtool $(CURDIR)/$(PROMTOOL); \
	  rc=$$?; rm -rf $$tmp; exit $$rc
	$(PROMTOOL) --version | head -1

$(AZURITE):
	@command -v npm >/dev/null || { $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq nodejs npm >/dev/null; }
	mkdir -p .cache/npm
	npm install --prefix .cache/npm --no-audit --no-fund --no-save --loglevel=error azurite@3
	@test -x $@ && touch $@

# .venv-lowest: ansible-core at the lowest version requires_ansible admits + the runtime and test deps
setup-lowest: $(LOWEST_STAMP)

$(LOWEST_STAMP): requirements-lowest.txt | $(STAMP) $(PROMTOOL)
	@[ -x $(VENV_LOWEST)/bin/python ] || python3 -m venv $(VENV_LOWEST)
	$(VENV_LOWEST)/bin/python -m pip install -q --upgrade pip
	$(VENV_LOWEST)/bin/python -m pip install -q -r requirements-lowest.txt
	ln -sfn $(CURDIR)/$(PROMTOOL) $(VENV_LOWEST)/bin/promtool
	@touch $@

$(COLL_LINK):
	mkdir -p $(dir $(COLL_LINK))
	ln -sfn ../../.. $(COLL_LINK)

.ssh/id_ed25519:
	mkdir -p .ssh && chmod 700 .ssh
	ssh-keygen -q -t ed25519 -N '' -C aiinfra-gpu-cluster-demo -f .ssh/id_ed25519

demo: setup
	$(ANSIBLE_PB) site.yml

teardown: setup
	$(ANSIBLE_PB) playbooks/teardown.yml

test: setup setup-lowest
	bash tests/run.sh

test-unit: setup
	$(PY) -m pytest -q tests/unit

test-integration: setup setup-lowest
	$(PY) -m pytest -q tests/integration

# every role's Molecule scenario (local nodes over SSH; make test leaves out the long ones, marked scale) and a user's
# scenario against the installed tarball
test-molecule: setup
	$(PY) -m pytest -q -p no:cacheprovider -n "$${TEST_WORKERS:-2}" --dist loadfile -m "not lowest" -k molecule \
	  tests/integration/test_roles_*.py \
	  tests/integration/test_molecule_installed.py

# the scale set: 8 local nodes with default forks (minutes; not in make test)
test-scale: setup
	$(PY) -m pytest -q -p no:cacheprovider -m scale tests/integration

# the TensorFlow set: the role through Molecule on a local node (tensorflow-cpu from a wheelhouse the controller builds),
# configure.yml on 2 nodes, and TensorFlow jobs through train.yml and verify.yml on 2 nodes (test_train_tensorflow.py)
test-tensorflow: setup
	$(PY) -m pytest -q -s -p no:cacheprovider -m tensorflow tests/integration
# no forgotten cluster: an idle local cluster stops itself, a busy one stays up (minutes of waiting; not in make test)
test-lifetime: setup
	$(PY) -m pytest -q -p no:cacheprovider -m lifetime tests/integration/test_lifetime.py

test-spot: setup
	$(PY) -m pytest -q -p no:cacheprovider -s -m spot tests/integration/test_preemption.py tests/integration/test_spot_reservations.py
# Slurm on 3 local nodes (tests/integration/test_slurm.py) and the role's Molecule scenario on 2 (test_roles_slurm.py);
# minutes; not in make test
test-slurm: setup
	$(PY) -m pytest -q -p no:cacheprovider -m slurm --durations=0 tests/integration/test_slurm.py \
	  tests/integration/test_roles_slurm.py
# the health gate on 3 local nodes, one link slowed with tc tbf (tests/integration/test_health.py; minutes; root for tc)
test-health: setup
	$(PY) -m pytest -q -p no:cacheprovider -m health --durations=0 tests/integration/test_health.py

sanity: setup
	bash tests/sanity.sh

# the whole tree (galaxy.yml, changelogs, extensions, molecule scenarios included; .ansible-lint excludes the venvs)
lint: setup
	$(VENV)/bin/ansible-lint --profile production

# what Galaxy / Automation Hub run on an upload (galaxy-importer, in .venv-importer: its pins differ from .venv's),
# antsibull-changelog lint and antsibull-docs lint-collection-docs; make test runs it too
galaxy: setup
	bash tests/galaxy.sh

bench: setup
	@for b in benchmarks/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

build: setup
	$(VENV)/bin/ansible-galaxy collection build --force --output-path dist .

clean:
	rm -rf dist .collections tests/output
