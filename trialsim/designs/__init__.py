"""Designs: allocation schemes (a registry); interim looks and decision rules to come."""
from trialsim.designs.allocation import Scheme, allocation_sequence, alternating, permuted_block, register, scheme, sequential, simple
from trialsim.designs.covariate_schemes import minimisation, selected, stratified_block

__all__ = ["Scheme", "allocation_sequence", "alternating", "minimisation", "permuted_block", "register", "scheme", "selected",
           "sequential", "simple", "stratified_block"]
