"""Backbone loading and the LightningModules: one module per head."""
