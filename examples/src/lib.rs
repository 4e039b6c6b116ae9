//! Examples live in `tests/`: each file there is a downstream-style VM test.
