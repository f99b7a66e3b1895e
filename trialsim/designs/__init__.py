"""Designs: allocation schemes (interim looks and decision rules to come)."""
from trialsim.designs.allocation import SCHEMES, allocation_sequence, alternating, permuted_block, sequential, simple

__all__ = ["SCHEMES", "allocation_sequence", "alternating", "permuted_block", "sequential", "simple"]
