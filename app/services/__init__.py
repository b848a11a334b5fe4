"""Contracted services (domains, hosting plans) as provisioning reports them, and how each
one is renewed: which payment method pays it, whether auto-renew is on, and when it is due."""
