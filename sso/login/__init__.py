"""The login layer: the login page and its doors, and the pending-request handshake.

A protocol endpoint that needs a user hands over a ``PendingRequest``; once a door has
authenticated the user, the protocol's registered completion gets the SSO session back.
"""
