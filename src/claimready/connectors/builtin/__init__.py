"""Built-in connectors: every module here is a plugin, registered like a third-party one."""
