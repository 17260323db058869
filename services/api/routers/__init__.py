"""One router per resource; each only gathers inputs, calls the store or a pure function, and
maps rows to response schemas."""
