"""Resolving the references Work 365 could not: who the provider's customer is in CRM, and the fix."""
