"""The ``nt_mcc`` evaluate metric (this file makes the folder ship as package data)."""
