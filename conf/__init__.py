"""Hydra configs of the cliffjax apps (package data: the YAML files beside this one)."""
