"""Reporting to the authorities: the HJ 212 codec (:mod:`.hj212`, :mod:`.hj212_flow`,
:mod:`.hj212_2025`) and the key energy-using units' online monitoring payloads (:mod:`.energy`).
Pure: bytes and typed values in, bytes and typed values out. The channels, their evidence and
what is still to be checked are in ``docs/push.md``."""
