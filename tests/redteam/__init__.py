"""The red-team suite of issue 12: hostile programs, grouped by what they attack, run through the public REST
API of a live stack; each asserts the safe outcome, then that the agent and another tenant's sandbox are healthy.

`make test` collects it with the rest of tests/. Alone: `pytest tests/redteam`; one issue item: `-k item3`.
Program ids start with the item of issue 12 they cover (`item1_` … `item10_`), `base_` for what DESIGN §4
already required (held on 426d6cf), `finding3_` for finding 3 of security/findings-426d6cf.md.
"""
