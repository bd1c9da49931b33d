"""CLI commands, grouped by who uses them; each module registers its commands on ``cli``."""
