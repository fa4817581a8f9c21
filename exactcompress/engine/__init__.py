"""The engine: network and domain types, bounds, witnesses, proofs, compression, verification (no Ray, no storage)."""
