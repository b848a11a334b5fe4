"""Payment gateways behind one port (`port.py`): the Stripe adapter and the built-in sandbox."""
