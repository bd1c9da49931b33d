"""Consent: the plan the admin approves before anything runs (plan, plan_view), the review of
what was redacted and the yes or no (review, decision)."""
