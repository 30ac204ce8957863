# virtio-pci endpoint front-end: every command bootstraps .venv from pyproject.toml first.
PYTHON  ?= python3
VENV    ?= .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed
PARAMS  ?=
JOBS    ?= 2
PYTEST_ARGS ?=

.PHONY: all sim linux test waves verilog lint conformance stress bench coverage docs clean distclean venv

all: test

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e .
	touch $@

venv: $(STAMP)

## make sim: enumerate the device through the root-complex model, print its capabilities,
## write a waveform (build/sim/waves.vcd) that GTKWave opens.  A transitional PARAMS file is
## brought up by the legacy driver; SIM_ARGS=--driver=modern|legacy chooses explicitly
SIM_ARGS ?=
sim: $(STAMP)
	$(PY) -m sim.bringup $(PARAMS) $(SIM_ARGS)

## make linux [PARAMS=file.json]: the unmodified Linux virtio_pci driver (User-Mode Linux 6.1 from
## Debian's linux-source-6.1, built once into /var/cache/virtio-pci-fe) drives the RTL through
## the vhost-user bridge (tb/host/uml_bridge.py): prints what Linux saw, the TLP transcript, a waveform
## (make waves) and the figures, then runs the Linux scenario tests (tb/integration/test_linux.py).
## Installs linux-source-6.1 and the kernel build tools with apt-get the first time (root or sudo).
linux: $(STAMP)
	$(PY) -m sim.linux $(PARAMS)
	VPCI_LINUX=1 $(PY) -m pytest -n 1 tb/integration/test_linux.py $(PYTEST_ARGS)

## make test: the whole regression (unit tests on Amaranth's simulator + cocotb/Verilator).
## WAVES=1: every cocotb run also writes its waveform (build/waves/<test>/, `make waves` opens the
## newest; unit benches write build/unit_waves/); pick tests with PYTEST_ARGS="-k ..." and the
## cocotb tests of a module with TEST=regex, e.g.
## make test WAVES=1 PYTEST_ARGS="-k 'transport and default and runtime'" TEST=doorbell_test
WAVES ?=
TEST  ?=
## Tests run longest first, each worker taking the next when it is free (--maxschedchunk=1), and
## the Verilator builds they need are made ahead of them, side by side (tb/conftest.py).
test: $(STAMP)
	VPCI_WAVES=$(WAVES) VPCI_TEST=$(TEST) $(PY) -m pytest -n $(JOBS) --maxschedchunk=1 $(PYTEST_ARGS)

## make waves: open the newest waveform of `make sim`, `make linux` or `make test WAVES=1` (or name it)
waves: $(STAMP)
	$(PY) -m sim.waves

## make verilog [PARAMS=file.json]: Verilog and its port/register JSON in build/verilog
verilog: $(STAMP)
	$(PY) -m virtio_pci.cli $(PARAMS) -o build/verilog

## make docs: regenerate docs/register-map.md from the code (tb/unit/test_docs.py checks it)
docs: $(STAMP)
	$(PY) -m sim.docs

## make lint: Verilator lint of the emitted Verilog and Python lint
lint: $(STAMP)
	$(PY) -m sim.lint

## make conformance: requirement IDs (spec/virtio-pci-conformance.md) cited by the tests, per section
conformance: $(STAMP)
	$(PY) -m tb.conformance

## make stress [COUNT=n] [SEED=s] [STRESS_ARGS=--params file.json]: randomised TLP traffic with
## a reference-model scoreboard (tb/scenarios/stress.py); prints its seed, a failure reproduces from it.
## STRESS_ARGS="--params examples/virtio-rng.json" stresses the virtio-rng device's queue instead
## (random chains, queue and device resets, every byte checked); COUNT then counts chains (e.g. 2000).
## The default 1,000,000 TLPs take about 2 minutes on an idle machine (about 8,500 TLPs per
## wall-clock second), about 4 minutes on a loaded one (4,000 TLPs per second).
COUNT ?= 1000000
SEED  ?=
STRESS_ARGS ?=
stress: $(STAMP)
	$(PY) -m sim.stress --count $(COUNT) $(if $(SEED),--seed $(SEED)) $(STRESS_ARGS)

## make coverage: Verilator line + toggle (+ branch) coverage of the cocotb regression (coverage
## builds), merged, reported per build and per module with totals (build/coverage/summary.txt)
coverage: $(STAMP)
	$(PY) -m sim.coverage --jobs $(JOBS) -- $(PYTEST_ARGS)

## make bench [BENCH_JSON=path] [BENCH_ARGS=...]: latency, throughput, simulation speed, area and
## Fmax (DESIGN.md section 8); prints the table and writes it as JSON (default
## build/bench/bench.json).  Installs the synthesis tools (pyproject extra `synth`) the first time.
## BENCH_ARGS: e.g. --skip-synth, --breakdown (python -m sim.bench --help)
BENCH_JSON ?= build/bench/bench.json
BENCH_ARGS ?=
SYNTH_STAMP := $(VENV)/.installed-synth

$(SYNTH_STAMP): pyproject.toml $(STAMP)
	$(VENV)/bin/pip install -q -e '.[synth]'
	touch $@

bench: $(STAMP) $(SYNTH_STAMP)
	$(PY) -m sim.bench --json $(BENCH_JSON) $(BENCH_ARGS)

clean:
	rm -rf build sim_build .pytest_cache

distclean: clean
	rm -rf $(VENV)
