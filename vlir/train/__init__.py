"""Training on VLIR: the model (:mod:`vlir.train.model`), the chat rendering shared by SFT and the
rollout engine (:mod:`vlir.train.chat`), and the trainers.

Nothing is imported here: ``import vlir.train`` must not pull in torch or transformers, so the data
verbs stay light. Import the submodules you need.
"""
