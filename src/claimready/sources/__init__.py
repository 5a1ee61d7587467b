"""Sources: the security tools evidence comes from."""
