"""Drivers above single runs: `sweep` (`make sweep` / `make tune`: both testbeds side by side,
progress and ETA) and `tune` (`make tune`'s rule: one learning rate per arm)."""
