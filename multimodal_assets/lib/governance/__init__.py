"""Governance: policy, the gateway, the audit log, lineage, pseudonyms, the column catalog and the per-role serving files."""
