"""The support side: inspect and analyze received bundles, merge several, keep and purge them
by their retention."""
