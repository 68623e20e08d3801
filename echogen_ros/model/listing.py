"""The ways `EchoGen.parse_scene` lists a frame's objects, by name (torch-free, for the command line):

- "labels" (the default): the grounder asked for every label of the vocabulary (`label_listing`); any model;
- "sequence": the trained one-pass listing, I2L without an expression (`inventory`); a model trained for it.
"""

LISTING_METHODS: tuple[str, ...] = ("labels", "sequence")
DEFAULT_LISTING = "labels"
