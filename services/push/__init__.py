"""The push service: queues HJ 212 packets built from calc results and sends them to the
authorities' platforms, store-and-forward (docs/push.md)."""
