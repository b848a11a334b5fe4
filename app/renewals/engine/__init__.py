"""The renewal engine: one module per stage of a sweep.

    sweep.py      runs one sweep: plan, then claim → charge → settle batch after batch
    plan.py       services whose charge date has come get their next period's renewal
    claim.py      due renewals are locked, get a `processing` attempt and a lease; commit
    reconcile.py  attempts left open past their lease are asked for again under their key
    charge.py     the gateway is called outside any transaction, with bounded concurrency
    settle.py     each answer is written in a transaction of its own group, if still ours
    outcomes.py   what an answer does to a renewal: succeed, retry, fail, wait for the customer
    authentication.py  on-session payments waiting for 3-D Secure, settled from the gateway
    fall_back.py  the optional switch to the customer's next method when one fails for good
    job.py        the charge job a claim hands to the gateway call, and its lease
    summary.py    what a sweep did, counted once per committed transaction

Data flows one way, down this list from sweep.py; nothing here imports app.sepa (the SEPA
cycle runs beside the sweep, see app/runs).
"""
