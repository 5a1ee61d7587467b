"""claimready: make an organization's security operations provable to its cyber insurer."""

__version__ = "0.1.0"
