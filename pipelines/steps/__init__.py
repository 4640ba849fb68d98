"""Beam steps of the builder: small DoFns/PTransforms, one verb each."""
