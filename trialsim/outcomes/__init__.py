"""Vectorised patient outcome generators, one module per endpoint family, linked through the patient.

Every generator takes arrays of shape (n_sims, n_patients) and a numpy Generator (keyword ``rng``)
and returns arrays of the same shape. :func:`trialsim.outcomes.patients.simulate_arm` ties them together.
"""
