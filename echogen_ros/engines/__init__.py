"""Grounding backends: torch (eager), onnxruntime (CPU/CUDA/TensorRT EPs) and native TensorRT."""
