"""Training on VLIR: the SFT and R-GRPO trainers, their configs, data and rewards. The model, its
tokens and the chat rendering they share with the rollout engine live in :mod:`vlir.models`.

Nothing is imported here: ``import vlir.train`` must not pull in torch or transformers, so the data
verbs stay light. Import the submodules you need.
"""
