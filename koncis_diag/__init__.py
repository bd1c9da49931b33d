"""koncis-diag: redacted, consented diagnostics bundles for Atlassian Server / Data Center."""

__version__ = "0.1.0"
