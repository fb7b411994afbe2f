"""SSO sessions (ticket-granting cookies) and CAS tickets, behind one registry interface."""
