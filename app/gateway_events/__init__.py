"""The card gateway's webhooks into the service: verified, recorded once, and handed to the
domains they change (payment_methods for cards, renewals for charges)."""
