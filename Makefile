# The two commands of the README; each sets up .venv the first time (Python >= 3.11).
#   make run              the main job (LAB=vit, mnist, finetune...; ARGS="--quick")
#   make test             the whole suite, once per backend (jax, torch, tensorflow)
#   make results          every lab on the three backends: RESULTS.md (about an hour and a half on 2 cores)
#                         one lab again: .venv/bin/python -m kcourse.results --labs vit
PYTHON ?= python3
LAB ?= mnist
ARGS ?=
VENV := .venv

run: $(VENV)/.installed
	$(VENV)/bin/python -m kcourse.tasks.$(LAB) $(ARGS)

test: $(VENV)/.installed
	$(VENV)/bin/nox

results: $(VENV)/.installed
	$(VENV)/bin/python -m kcourse.results

# Reinstalled when pyproject.toml changes. PIP_ARGS="--extra-index-url https://download.pytorch.org/whl/cpu"
# gives torch's CPU wheel on a plain Linux machine (PyPI's torch is the CUDA build).
$(VENV)/.installed: pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet -e ".[backends,dev]" $(PIP_ARGS)
	touch $@

.PHONY: run test results
