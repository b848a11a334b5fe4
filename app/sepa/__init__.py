"""SEPA direct-debit collections: dates, sequence types, pain.008 files and returns.

Database-free rules, called by the SEPA service, the renewal engine and the admin API:

- `calendar`  TARGET2 business days; the requested collection date and submission deadline
- `sequence`  FRST/RCUR per mandate; mandate lapse after 36 months; IBAN change
- `pain008`   the direct-debit initiation file (sepaxml), validated against the ISO XSD
- `returns`   the bank's reject/return reports (pain.002 and camt.054 in `returns_xml`,
              CSV); what they say and the reason classes in `return_records`
- `charset`   the SEPA character set; reference and creditor-identifier checks
- `xmlsafe`   hardened parsing of uploaded XML
"""
