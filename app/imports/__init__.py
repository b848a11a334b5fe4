"""Moving payment methods in from the previous customer panel: SEPA mandates and cards stored
at the gateway, checked and imported in two passes (see service.py)."""
