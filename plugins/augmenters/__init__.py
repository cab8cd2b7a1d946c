"""Built-in plugins of cxr-harness, installed as the cxr_harness_plugins package."""
