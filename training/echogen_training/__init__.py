"""echogen_training: turns a Janus backbone into EchoGen (VQ → PMTP → DJO → Cycle RL).

The robot never imports this package; it imports `echogen_ros` (the model, the world) and adds the
training stages, datasets, rewards and evaluation on top.
"""

__version__ = "0.1.0"
