"""A renewal run: the card sweep and the SEPA cycle, one after the other.

The two live side by side below this package (app/renewals charges cards, app/sepa collects
direct debits), and neither imports the other's machinery; a run is the one place that
drives both, for the periodic job, the admin route and the CLI.
"""
