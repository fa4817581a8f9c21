"""Proofs of neuron stability with SCIP MILPs (big-M encoding of the ReLU network over a box)."""
