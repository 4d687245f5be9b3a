"""The reference hub: MLLP (PIX/PDQ), HTTP (login, linking, consent, audit, records), its store and policy.

Being built across issues; what exists is exported here.
"""

__all__: list[str] = []
