"""Molecular dynamics drivers: recorders for ASE dynamics, ring-polymer MD, an i-PI client."""
