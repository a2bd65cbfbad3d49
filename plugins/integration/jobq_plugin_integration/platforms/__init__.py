"""The four platforms shipped with the plugin, each registered on ``jobq.integrations``."""
