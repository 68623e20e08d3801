"""The domain: the words the system understands and what its relations mean, below everything that uses
them (the world that generates scenes, the model's vocabulary, the planner's geometry)."""
