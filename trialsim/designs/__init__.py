"""Designs: allocation schemes (a registry); interim looks and decision rules to come."""
from trialsim.designs.allocation import Scheme, allocation_sequence, alternating, permuted_block, register, scheme, sequential, simple

__all__ = ["Scheme", "allocation_sequence", "alternating", "permuted_block", "register", "scheme", "sequential", "simple"]
