"""Training: a shard dataset in, a model directory out (`thermal-synth train`). Two recipes share
one run loop (run.py): the paper's GAN recipe for a GPU (trainer.py) and the CPU recipe
(cpu_recipe.py) that trains the shipped default model on two cores.
"""
