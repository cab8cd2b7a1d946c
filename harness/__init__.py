"""cxr-harness: an evaluation-first benchmark harness for chest X-ray VLM fine-tuning."""

__version__ = "0.1.0"
