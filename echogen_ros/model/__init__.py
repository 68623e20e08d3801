"""EchoGen on the Janus architecture: token scheme, letterboxing, grounding and imagining."""
